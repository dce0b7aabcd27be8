/// A dense, contiguous, row-major float32 tensor.
///
/// `Tensor` is a value type over a copy-on-write `[Float]`: models pass tensors between layers without sharing
/// mutable state, and the hot kernels work on the raw buffers through `withUnsafe…BufferPointer`.
public struct Tensor: Sendable, Equatable {
    /// The extent of each axis, outermost first.
    public private(set) var shape: [Int]
    /// The elements in row-major order.
    public var data: [Float]

    /// Creates a tensor of zeros.
    public init(zeros shape: [Int]) {
        self.shape = shape
        self.data = [Float](repeating: 0, count: shape.reduce(1, *))
    }

    /// Creates a tensor from elements in row-major order; `data.count` must equal the product of `shape`.
    public init(shape: [Int], data: [Float]) {
        precondition(shape.reduce(1, *) == data.count, "Tensor: \(data.count) elements do not fill shape \(shape)")
        self.shape = shape
        self.data = data
    }

    /// The number of elements.
    @inlinable public var count: Int { data.count }

    /// The number of axes.
    @inlinable public var rank: Int { shape.count }

    /// Returns the same elements viewed with another shape of equal element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, data: data)
    }

    /// Changes the shape in place; the element count must not change.
    public mutating func reshape(_ newShape: [Int]) {
        precondition(newShape.reduce(1, *) == data.count, "Tensor: cannot reshape \(shape) to \(newShape)")
        shape = newShape
    }

    /// Returns the tensor with two axes swapped, materialised contiguously.
    public func transposed(_ a: Int, _ b: Int) -> Tensor {
        var perm = Array(0..<rank)
        perm.swapAt(a, b)
        return permuted(perm)
    }

    /// Returns the tensor with its axes reordered: result axis `i` is input axis `order[i]`.
    public func permuted(_ order: [Int]) -> Tensor {
        precondition(order.count == rank && Set(order).count == rank, "Tensor: bad permutation \(order)")
        let outShape = order.map { shape[$0] }
        var inStrides = [Int](repeating: 1, count: rank)
        for axis in stride(from: rank - 2, through: 0, by: -1) { inStrides[axis] = inStrides[axis + 1] * shape[axis + 1] }
        let strides = order.map { inStrides[$0] }
        var out = [Float](repeating: 0, count: count)
        // Walk the output in order; the innermost axis is copied with a fixed input stride.
        let inner = outShape.last ?? 1
        let innerStride = strides.last ?? 1
        let outer = count / max(inner, 1)
        var index = [Int](repeating: 0, count: max(rank - 1, 0))
        data.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                var base = 0
                for o in 0..<outer {
                    let d = dst.baseAddress! + o * inner
                    var s = base
                    for i in 0..<inner { d[i] = src[s]; s += innerStride }
                    // Advance the multi-index over the outer axes.
                    var axis = rank - 2
                    while axis >= 0 {
                        index[axis] += 1
                        base += strides[axis]
                        if index[axis] < outShape[axis] { break }
                        base -= strides[axis] * outShape[axis]
                        index[axis] = 0
                        axis -= 1
                    }
                }
            }
        }
        return Tensor(shape: outShape, data: out)
    }
}
