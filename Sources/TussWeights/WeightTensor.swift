import Foundation

/// The element type of a stored tensor, spelled as in safetensors headers.
public enum WeightDType: String, Sendable, CaseIterable {
    case f32 = "F32", f16 = "F16", bf16 = "BF16", f64 = "F64"
    case i64 = "I64", i32 = "I32", i16 = "I16", i8 = "I8", u8 = "U8", bool = "BOOL"

    /// Bytes per element.
    public var byteSize: Int {
        switch self {
        case .f64, .i64: return 8
        case .f32, .i32: return 4
        case .f16, .bf16, .i16: return 2
        case .i8, .u8, .bool: return 1
        }
    }

    /// Whether the elements are floating-point numbers.
    public var isFloatingPoint: Bool {
        switch self {
        case .f32, .f16, .bf16, .f64: return true
        case .i64, .i32, .i16, .i8, .u8, .bool: return false
        }
    }
}

/// A tensor as stored in a weights file: dtype, shape, and little-endian bytes (possibly memory-mapped).
///
/// The bytes are row-major (C order) and contiguous. Values are immutable; copies share the bytes.
/// Bytes from a file may sit at any alignment: read them with `floats()`/`int64s()` or with unaligned loads.
public struct WeightTensor: Sendable, Equatable {
    /// The element type.
    public let dtype: WeightDType
    /// The dimensions, outermost first; `[]` is a scalar.
    public let shape: [Int]
    /// The number of elements: the product of `shape` (1 for a scalar).
    public let count: Int
    /// Exactly `count * dtype.byteSize` little-endian bytes; may be a slice of a memory-mapped file.
    let storage: Data

    /// Creates a tensor from raw little-endian bytes, checking that their number matches dtype and shape.
    public init(dtype: WeightDType, shape: [Int], bytes: Data) throws {
        guard let count = WeightTensor.elementCount(of: shape) else {
            throw WeightsError.invalidTensor(reason: "shape \(shape) has a negative dimension or too many elements")
        }
        let (byteCount, overflow) = count.multipliedReportingOverflow(by: dtype.byteSize)
        guard !overflow, byteCount == bytes.count else {
            throw WeightsError.invalidTensor(
                reason: "\(dtype.rawValue) shape \(shape) needs \(overflow ? "too many" : String(byteCount)) bytes, got \(bytes.count)")
        }
        self.init(unchecked: dtype, shape: shape, count: count, storage: bytes)
    }

    /// Creates a float32 tensor; the product of `shape` must equal `floats.count`.
    public init(floats: [Float], shape: [Int]) {
        let count = WeightTensor.elementCount(of: shape)
        precondition(count == floats.count, "WeightTensor(floats:shape:): shape \(shape) does not hold \(floats.count) values")
        #if _endian(little)
        let bytes = floats.withUnsafeBytes { Data($0) }
        #else
        var bytes = Data(count: floats.count * 4)
        bytes.withUnsafeMutableBytes { raw in
            for (i, value) in floats.enumerated() {
                raw.storeBytes(of: value.bitPattern.littleEndian, toByteOffset: i * 4, as: UInt32.self)
            }
        }
        #endif
        self.init(unchecked: .f32, shape: shape, count: floats.count, storage: bytes)
    }

    /// Creates a tensor whose invariants the caller has already checked.
    init(unchecked dtype: WeightDType, shape: [Int], count: Int, storage: Data) {
        self.dtype = dtype
        self.shape = shape
        self.count = count
        self.storage = storage
    }

    /// The number of bytes: `count * dtype.byteSize`.
    public var byteCount: Int { storage.count }

    /// Calls `body` with the raw little-endian bytes (no copy; any alignment).
    public func withUnsafeBytes<R>(_ body: (UnsafeRawBufferPointer) throws -> R) rethrows -> R {
        try storage.withUnsafeBytes(body)
    }

    /// The product of a shape's dimensions, or nil when a dimension is negative or the product overflows.
    static func elementCount(of shape: [Int]) -> Int? {
        var product = 1
        for dimension in shape {
            guard dimension >= 0 else { return nil }
            let (next, overflow) = product.multipliedReportingOverflow(by: dimension)
            if overflow { return nil }
            product = next
        }
        return product
    }

    /// The elements converted to `Float` (float32 copied; f16, bf16, f64 and integers converted; bool as 0 or 1).
    public func floats() throws -> [Float] {
        let n = count
        switch dtype {
        case .f32:
            #if _endian(little)
            return [Float](unsafeUninitializedCapacity: n) { buffer, initialized in
                storage.withUnsafeBytes { raw in
                    UnsafeMutableRawBufferPointer(buffer).copyMemory(from: UnsafeRawBufferPointer(rebasing: raw.prefix(n * 4)))
                }
                initialized = n
            }
            #else
            return convert(stride: 4) { Float(bitPattern: UInt32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt32.self))) }
            #endif
        case .f16:
            return convert(stride: 2) { WeightTensor.floatFromHalf(UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt16.self))) }
        case .bf16:
            return convert(stride: 2) {
                Float(bitPattern: UInt32(UInt16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt16.self))) << 16)
            }
        case .f64:
            return convert(stride: 8) { Float(Double(bitPattern: UInt64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: UInt64.self)))) }
        case .i64:
            return convert(stride: 8) { Float(Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self))) }
        case .i32:
            return convert(stride: 4) { Float(Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self))) }
        case .i16:
            return convert(stride: 2) { Float(Int16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int16.self))) }
        case .i8:
            return convert(stride: 1) { Float(Int8(bitPattern: $0[$1])) }
        case .u8:
            return convert(stride: 1) { Float($0[$1]) }
        case .bool:
            return convert(stride: 1) { $0[$1] != 0 ? 1 : 0 }
        }
    }

    /// The elements as `Int64`; only for integer and bool tensors (bool as 0 or 1).
    public func int64s() throws -> [Int64] {
        switch dtype {
        case .i64:
            return convert(stride: 8) { Int64(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int64.self)) }
        case .i32:
            return convert(stride: 4) { Int64(Int32(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int32.self))) }
        case .i16:
            return convert(stride: 2) { Int64(Int16(littleEndian: $0.loadUnaligned(fromByteOffset: $1, as: Int16.self))) }
        case .i8:
            return convert(stride: 1) { Int64(Int8(bitPattern: $0[$1])) }
        case .u8:
            return convert(stride: 1) { Int64($0[$1]) }
        case .bool:
            return convert(stride: 1) { $0[$1] != 0 ? 1 : 0 }
        case .f32, .f16, .bf16, .f64:
            throw WeightsError.invalidTensor(reason: "int64s() needs an integer or bool tensor but this one is \(dtype.rawValue); use floats()")
        }
    }

    /// Builds an array by reading element `i` at byte offset `i * stride` with `element`.
    private func convert<T>(stride: Int, _ element: (UnsafeRawBufferPointer, Int) -> T) -> [T] {
        let n = count
        return [T](unsafeUninitializedCapacity: n) { buffer, initialized in
            guard let base = buffer.baseAddress else { return }
            storage.withUnsafeBytes { raw in
                for i in 0..<n {
                    (base + i).initialize(to: element(raw, i &* stride))
                }
            }
            initialized = n
        }
    }

    /// Converts IEEE 754 binary16 bits to a float (exact: every half value is a float value).
    static func floatFromHalf(_ bits: UInt16) -> Float {
        let sign = UInt32(bits & 0x8000) << 16
        let exponent = UInt32(bits >> 10) & 0x1F
        let mantissa = UInt32(bits & 0x03FF)
        if exponent == 0 {
            // Zero or subnormal: mantissa · 2^-24.
            let magnitude = Float(mantissa) * Float(bitPattern: 0x3380_0000)
            return sign == 0 ? magnitude : -magnitude
        }
        if exponent == 0x1F {
            return Float(bitPattern: sign | 0x7F80_0000 | (mantissa << 13))
        }
        return Float(bitPattern: sign | ((exponent + 112) << 23) | (mantissa << 13))
    }
}
