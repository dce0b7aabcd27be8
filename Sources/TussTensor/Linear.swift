/// A fully connected layer `y = x·Wᵀ + b` over the last axis, with PyTorch's weight layout `[out, in]`.
public struct Linear: Sendable {
    /// `[outFeatures, inFeatures]`, row-major.
    public let weight: [Float]
    public let bias: [Float]?
    public let inFeatures: Int
    public let outFeatures: Int

    /// Creates a layer; `weight.count` must be `outFeatures·inFeatures` and `bias`, if any, `outFeatures`.
    public init(weight: [Float], bias: [Float]?, inFeatures: Int, outFeatures: Int) {
        precondition(weight.count == inFeatures * outFeatures, "Linear: weight has \(weight.count) elements, expected \(outFeatures)×\(inFeatures)")
        precondition(bias.map { $0.count == outFeatures } ?? true, "Linear: bias size")
        self.weight = weight
        self.bias = bias
        self.inFeatures = inFeatures
        self.outFeatures = outFeatures
    }

    /// Applies the layer to `rows` vectors stored contiguously: `x` is `[rows, in]`, `y` is `[rows, out]`.
    ///
    /// With `accumulate`, the result is added to what `y` holds (a residual connection without a copy).
    public func apply(_ x: UnsafePointer<Float>, rows: Int, into y: UnsafeMutablePointer<Float>,
                      accumulate: Bool = false, parallel: Bool = true) {
        weight.withUnsafeBufferPointer { w in
            if let bias, !accumulate {
                bias.withUnsafeBufferPointer { b in
                    for r in 0..<rows { (y + r * outFeatures).update(from: b.baseAddress!, count: outFeatures) }
                }
            }
            BLAS.gemm(transB: true, m: rows, n: outFeatures, k: inFeatures,
                      a: x, lda: inFeatures, b: w.baseAddress!, ldb: inFeatures,
                      beta: (accumulate || bias != nil) ? 1 : 0, c: y, ldc: outFeatures, parallel: parallel)
            if let bias, accumulate {
                for r in 0..<rows {
                    let row = y + r * outFeatures
                    for o in 0..<outFeatures { row[o] += bias[o] }
                }
            }
        }
    }

    /// Applies the layer over the last axis of a tensor.
    public func callAsFunction(_ x: Tensor) -> Tensor {
        precondition(x.shape.last == inFeatures, "Linear: input \(x.shape) does not end in \(inFeatures)")
        let rows = x.count / inFeatures
        var out = Tensor(zeros: Array(x.shape.dropLast()) + [outFeatures])
        x.data.withUnsafeBufferPointer { px in
            out.data.withUnsafeMutableBufferPointer { po in
                apply(px.baseAddress!, rows: rows, into: po.baseAddress!)
            }
        }
        return out
    }
}
