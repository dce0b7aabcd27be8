/// ‖a − b‖ / ‖b‖ over whole arrays, accumulated in Double.
///
/// Double accumulation keeps the measure itself from adding float32 rounding to the error being measured. Arrays of
/// different lengths give infinity, so an "is close" assertion fails and an "is different" assertion still holds.
public func relativeL2(_ a: [Float], _ b: [Float]) -> Double {
    guard a.count == b.count else { return .infinity }
    var num = 0.0, den = 0.0
    for i in a.indices {
        let d = Double(a[i]) - Double(b[i])
        num += d * d
        den += Double(b[i]) * Double(b[i])
    }
    return (num / max(den, 1e-300)).squareRoot()
}
