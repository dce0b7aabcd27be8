/// SplitMix64: a seeded `RandomNumberGenerator` for reproducible test inputs and fuzzing.
///
/// The system generator would make a failure impossible to replay; a seed in the test makes it the same every run.
public struct SeededGenerator: RandomNumberGenerator {
    private var state: UInt64

    public init(seed: UInt64) { state = seed }

    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// Xorshift64 uniform values in [-1, 1) for synthetic tensors and weight files.
///
/// Kept apart from `SeededGenerator` because the kernel, masker and synthetic-weight tests were written against this
/// exact sequence: switching algorithm would change the inputs, and so what those tests check.
public struct XorshiftGenerator {
    private var state: UInt64

    /// The seed is scrambled and made odd so that small seeds (0, 1, 2…) still give well-mixed, non-zero states.
    public init(seed: UInt64) { state = seed &* 0x9E37_79B9_7F4A_7C15 | 1 }

    public mutating func next() -> UInt64 {
        state ^= state << 13; state ^= state >> 7; state ^= state << 17
        return state
    }

    /// A uniform value in [-1, 1) from the top 24 bits, which a Float holds exactly.
    public mutating func uniform() -> Float { Float(next() >> 40) / Float(1 << 24) * 2 - 1 }

    /// `count` uniform values in [-1, 1).
    public mutating func array(_ count: Int) -> [Float] { (0..<count).map { _ in uniform() } }
}
