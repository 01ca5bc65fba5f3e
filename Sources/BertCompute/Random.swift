/// A small, fast, seedable generator (xoshiro256**, seeded by SplitMix64). Its whole state is four
/// integers, so a training checkpoint can store it and resume the exact same stream.
public struct SeededRandom: RandomNumberGenerator, Sendable, Equatable, Codable {
    /// The four xoshiro256** state words; store it to resume the same stream.
    public var state: [UInt64]

    /// A generator whose state is expanded from `seed` by SplitMix64; equal seeds give equal streams.
    public init(seed: UInt64) {
        var z = seed
        var s = [UInt64](repeating: 0, count: 4)
        for i in 0..<4 {
            z &+= 0x9E37_79B9_7F4A_7C15
            var x = z
            x = (x ^ (x >> 30)) &* 0xBF58_476D_1CE4_E5B9
            x = (x ^ (x >> 27)) &* 0x94D0_49BB_1331_11EB
            s[i] = x ^ (x >> 31)
        }
        state = s
    }

    public mutating func next() -> UInt64 {
        let result = rotl(state[1] &* 5, 7) &* 9
        let t = state[1] << 17
        state[2] ^= state[0]
        state[3] ^= state[1]
        state[1] ^= state[2]
        state[0] ^= state[3]
        state[2] ^= t
        state[3] = rotl(state[3], 45)
        return result
    }

    @inline(__always) private func rotl(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }

    /// Uniform in [0, 1) with 24 bits.
    public mutating func nextUnitFloat() -> Float { Float(next() >> 40) * (1.0 / 16_777_216.0) }

    /// Uniform in [0, 1) with 53 bits.
    public mutating func nextUnitDouble() -> Double { Double(next() >> 11) * (1.0 / 9_007_199_254_740_992.0) }

    /// A standard normal sample (Box–Muller in Double).
    public mutating func nextGaussian() -> Double {
        let u1 = 1 - nextUnitDouble()  // (0, 1]
        let u2 = nextUnitDouble()
        return (-2 * _log(u1)).squareRoot() * _cos(2 * Double.pi * u2)
    }
}

#if canImport(Glibc)
    import Glibc
    @inline(__always) private func _log(_ x: Double) -> Double { Glibc.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Glibc.cos(x) }
#elseif canImport(Darwin)
    import Darwin
    @inline(__always) private func _log(_ x: Double) -> Double { Darwin.log(x) }
    @inline(__always) private func _cos(_ x: Double) -> Double { Darwin.cos(x) }
#endif
