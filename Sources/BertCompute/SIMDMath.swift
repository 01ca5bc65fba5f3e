// Vectorised transcendental functions on 16 Float lanes. libm's expf/erff/tanhf are scalar and
// never vectorise; these are the inner loops of softmax, GELU and the pooler's tanh.

/// 16 Float lanes: the vector width of these kernels.
public typealias Vec16 = SIMD16<Float>

/// Loads 16 Floats from `p` (no alignment needed).
@inline(__always)
public func loadVec(_ p: UnsafePointer<Float>) -> Vec16 {
    UnsafeRawPointer(p).loadUnaligned(as: Vec16.self)
}

/// Stores the 16 lanes of `v` at `p` (no alignment needed).
@inline(__always)
public func storeVec(_ v: Vec16, _ p: UnsafeMutablePointer<Float>) {
    UnsafeMutableRawPointer(p).storeBytes(of: v, as: Vec16.self)
}

/// Loads `n` < 16 Floats into the low lanes; the other lanes are `fill`.
@inline(__always)
public func loadPartial(_ p: UnsafePointer<Float>, _ n: Int, fill: Float = 0) -> Vec16 {
    var v = Vec16(repeating: fill)
    for i in 0..<n { v[i] = p[i] }
    return v
}

/// Stores the low `n` < 16 lanes of `v` at `p`.
@inline(__always)
public func storePartial(_ v: Vec16, _ p: UnsafeMutablePointer<Float>, _ n: Int) {
    for i in 0..<n { p[i] = v[i] }
}

/// a·b + c, one rounding and one instruction per lane in FMA builds (see `madd`).
@inline(__always)
func fmadd(_ a: Vec16, _ b: Vec16, _ c: Vec16) -> Vec16 {
    #if BERT_FMA
        return c.addingProduct(a, b)
    #else
        return a * b + c
    #endif
}

/// e^x, relative error below 2e-7 on [-87, 88]; 0 below -87, clamped above 88.
@inline(__always)
public func vexp(_ x: Vec16) -> Vec16 {
    let tooSmall = x .< -87
    var x = x.replacing(with: 88, where: x .> 88)
    x.replace(with: -87, where: tooSmall)
    // x = n·ln2 + r with |r| <= ln2/2; n rounded by the 1.5·2^23 shifter trick.
    let shifter: Float = 12_582_912  // 1.5·2^23: adding it rounds to an integer kept in the low bits
    let shifted = fmadd(x, Vec16(repeating: 1.442_695_040_888_963_4), Vec16(repeating: shifter))
    let n = shifted - shifter
    var r = fmadd(n, Vec16(repeating: -0.693_145_751_953_125), x)
    r = fmadd(n, Vec16(repeating: -1.428_606_765_330_187_0e-06), r)
    var p = Vec16(repeating: 1.0 / 5040)
    p = fmadd(p, r, Vec16(repeating: 1.0 / 720))
    p = fmadd(p, r, Vec16(repeating: 1.0 / 120))
    p = fmadd(p, r, Vec16(repeating: 1.0 / 24))
    p = fmadd(p, r, Vec16(repeating: 1.0 / 6))
    p = fmadd(p, r, Vec16(repeating: 0.5))
    p = fmadd(p, r, Vec16(repeating: 1))
    p = fmadd(p, r, Vec16(repeating: 1))
    // 2^n from the shifted value's bits (integer lane arithmetic vectorises; Float→Int32 does not).
    let bits = (unsafeBitCast(shifted, to: SIMD16<Int32>.self) &- 0x4B40_0000 &+ 127) &<< 23
    var result = p * unsafeBitCast(bits, to: Vec16.self)
    result.replace(with: 0, where: tooSmall)
    return result
}

/// erf(x) as a rational function x·P(x²)/Q(x²) on x clamped to [−4, 4] (erf(±4) = ±1 in Float):
/// absolute error below 5e-7, no exp, one division.
@inline(__always)
public func verf(_ x: Vec16) -> Vec16 {
    var x = x.replacing(with: 4, where: x .> 4)
    x.replace(with: -4, where: x .< -4)
    let x2 = x * x
    var p = Vec16(repeating: -2.726_142_258_013_06e-10)
    p = fmadd(p, x2, Vec16(repeating: 2.770_681_424_959_02e-08))
    p = fmadd(p, x2, Vec16(repeating: -2.101_024_020_825_08e-06))
    p = fmadd(p, x2, Vec16(repeating: -5.692_506_394_623_46e-05))
    p = fmadd(p, x2, Vec16(repeating: -7.349_906_303_268_55e-04))
    p = fmadd(p, x2, Vec16(repeating: -2.954_599_808_540_25e-03))
    p = fmadd(p, x2, Vec16(repeating: -1.609_603_332_624_15e-02))
    var q = Vec16(repeating: -1.456_607_184_649_96e-05)
    q = fmadd(q, x2, Vec16(repeating: -2.133_740_552_789_05e-04))
    q = fmadd(q, x2, Vec16(repeating: -1.682_826_974_382_03e-03))
    q = fmadd(q, x2, Vec16(repeating: -7.373_329_167_204_68e-03))
    q = fmadd(q, x2, Vec16(repeating: -1.426_473_905_141_89e-02))
    return x * p / q
}

/// tanh(x) = sign(x)·(1 − 2/(e^{2|x|}+1)), absolute error below 3e-7.
@inline(__always)
public func vtanh(_ x: Vec16) -> Vec16 {
    let negative = x .< 0
    var a = x.replacing(with: -x, where: negative)
    a.replace(with: 10, where: a .> 10)
    let y = 1 - 2 / (vexp(2 * a) + 1)
    return y.replacing(with: -y, where: negative)
}

/// GELU, exact form: x·Φ(x) = 0.5·x·(1 + erf(x/√2)) (hidden_act "gelu").
@inline(__always)
public func vgeluErf(_ x: Vec16) -> Vec16 {
    0.5 * x * (1 + verf(x * 0.707_106_781_186_547_5))
}

/// GELU, tanh approximation: 0.5·x·(1 + tanh(√(2/π)·(x + 0.044715·x³))) (hidden_act "gelu_new",
/// "gelu_pytorch_tanh", "gelu_fast" all compute this up to rounding).
@inline(__always)
public func vgeluTanh(_ x: Vec16) -> Vec16 {
    0.5 * x * (1 + vtanh(0.797_884_560_802_865_4 * (x + 0.044_715 * x * x * x)))
}
