/// Vectorised `exp` for activations: Cody–Waite range reduction and a degree-6 polynomial (≈ 2 ulp on [−87, 88]),
/// eight lanes at a time. `expf` per element costs more than the GEMMs around it in the SwiGLU feed-forwards.
@inline(__always)
func vexp(_ x: SIMD8<Float>) -> SIMD8<Float> {
    let clamped = x.clamped(lowerBound: SIMD8(repeating: -87.3), upperBound: SIMD8(repeating: 88.3))
    // Round to the nearest integer with the 1.5·2²³ trick: the sum's low mantissa bits hold n, so no (slow, generic)
    // float-to-integer vector conversion is needed.
    let magic = SIMD8<Float>(repeating: 12582912.0)
    let shifted = clamped * 1.442695041 + magic
    let n = shifted - magic
    var r = clamped - n * 0.693359375
    r = r - n * -2.12194440e-4
    var p = SIMD8<Float>(repeating: 1.0 / 720)
    p = p * r + 1.0 / 120
    p = p * r + 1.0 / 24
    p = p * r + 1.0 / 6
    p = p * r + 0.5
    p = p * r + 1
    p = p * r + 1
    let ni = unsafeBitCast(shifted, to: SIMD8<Int32>.self) &- 0x4B40_0000
    let scale = unsafeBitCast((ni &+ 127) &<< 23, to: SIMD8<Float>.self)
    return p * scale
}

/// Scalar companion of `vexp` for loop tails, so every element sees the same approximation.
@inline(__always)
func sexp(_ x: Float) -> Float {
    vexp(SIMD8(repeating: x))[0]
}

/// Applies `f` to `count` floats eight at a time, with a padded tail.
@inline(__always)
func mapSIMD8(_ x: UnsafeMutablePointer<Float>, count: Int, _ f: (SIMD8<Float>) -> SIMD8<Float>) {
    let raw = UnsafeMutableRawPointer(x)
    var i = 0
    while i + 8 <= count {
        let v = raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD8<Float>.self)
        raw.storeBytes(of: f(v), toByteOffset: i * 4, as: SIMD8<Float>.self)
        i += 8
    }
    if i < count {
        var v = SIMD8<Float>(repeating: 0)
        for j in 0..<(count - i) { v[j] = x[i + j] }
        let y = f(v)
        for j in 0..<(count - i) { x[i + j] = y[j] }
    }
}
