import Foundation
import Testing
import Bert
import BertCompute

/// Weights packed ahead of time for inference (BLAS.packedGemmNT, BertModel.prepareForInference).
@Suite struct PackedInferenceTests {
    /// The packed product equals a double-precision reference on shapes with every kind of
    /// remainder: rows not a multiple of 6, k over one 256 block and not a multiple of 8, a
    /// subrange of rows and panels (what each thread computes), with and without bias.
    @Test(arguments: [(13, 32, 7), (50, 48, 300), (6, 16, 513), (31, 64, 1)])
    func packedProductMatchesReference(_ shape: (Int, Int, Int)) {
        let (m, n, k) = shape
        var rng = SeededRandom(seed: UInt64(m * 1000 + k))
        let a = (0..<(m * k)).map { _ in Float(rng.nextGaussian()) }
        let w = (0..<(n * k)).map { _ in Float(rng.nextGaussian()) }
        let bias = (0..<n).map { _ in Float(rng.nextGaussian()) }
        let packed = w.withUnsafeBufferPointer { PackedWeights($0.baseAddress!, n: n, k: k) }
        // CKernels' AVX-512 kernel (where the CPU has it) and the Swift one.
        let cases = [true, false].flatMap { native in
            [(native, true, 0..<m, 0..<(n / 16)), (native, false, 2..<(m - 1), 1..<(n / 16))]
        }
        for (native, useBias, rows, panels) in cases where !rows.isEmpty && !panels.isEmpty {
            var c = [Float](repeating: .nan, count: m * n)
            bias.withUnsafeBufferPointer { bp in
                BLAS.packedGemmNT(
                    a: a, lda: k, w: packed, bias: useBias ? bp.baseAddress : nil, c: &c, ldc: n,
                    rows: rows, panels: panels, native: native)
            }
            var bad = 0
            for i in 0..<m {
                for j in 0..<n {
                    let inside = rows.contains(i) && panels.contains(j / 16)
                    if !inside {
                        if !c[i * n + j].isNaN { bad += 1 }  // outside its block nothing is written
                        continue
                    }
                    var want = useBias ? Double(bias[j]) : 0
                    for p in 0..<k { want += Double(a[i * k + p]) * Double(w[j * k + p]) }
                    if abs(Double(c[i * n + j]) - want) > 1e-4 * max(1, abs(want)) { bad += 1 }
                }
            }
            #expect(
                bad == 0, "\(shape) native \(native) bias \(useBias) rows \(rows) panels \(panels): \(bad) wrong values"
            )
        }
    }

    /// One head of fused attention equals softmax(q·kᵀ/√d)·v computed in double precision: key
    /// counts that are not multiples of 16 (padding keys must not leak into the weights), query
    /// rows not a multiple of 6, fewer query rows than keys (a row block), strided QKV rows, and
    /// outputs only in the head's own columns.
    @Test(arguments: [(1, 1, 16), (17, 17, 32), (40, 13, 64), (130, 130, 32), (300, 7, 16)])
    func fusedAttentionMatchesReference(_ shape: (Int, Int, Int)) {
        let (keys, rows, d) = shape
        #expect(BLAS.canFuseAttention(headSize: d))
        let ld = 3 * d + 5, ldo = d + 3
        var rng = SeededRandom(seed: UInt64(keys * 100 + d))
        // Scores of a few units, as in a trained model, so that softmax is far from uniform.
        let qkv = (0..<(keys * ld)).map { _ in Float(rng.nextGaussian()) * 2 }
        for native in [true, false] {
            var out = [Float](repeating: .nan, count: rows * ldo)
            var scratch = [Float](repeating: .nan, count: BLAS.fusedAttentionScratch(keys: keys, headSize: d))
            let scale = 1 / Float(d).squareRoot()
            qkv.withUnsafeBufferPointer { b in
                let q = b.baseAddress!, k = q + d + 1, v = k + d + 2
                BLAS.fusedAttention(
                    q: q, k: k, v: v, ld: ld, keys: keys, headSize: d, rows: rows, scale: scale,
                    out: &out, ldo: ldo, scratch: &scratch, native: native)
            }
            var bad = 0
            for i in 0..<rows {
                var weights = (0..<keys).map { j -> Double in
                    var s = 0.0
                    for p in 0..<d { s += Double(qkv[i * ld + p]) * Double(qkv[j * ld + d + 1 + p]) }
                    return s * Double(scale)
                }
                let top = weights.max()!
                weights = weights.map { Foundation.exp($0 - top) }
                let sum = weights.reduce(0, +)
                for c in 0..<ldo {
                    let got = out[i * ldo + c]
                    guard c < d else { if !got.isNaN { bad += 1 }; continue }
                    var want = 0.0
                    for j in 0..<keys { want += weights[j] / sum * Double(qkv[j * ld + 2 * d + 3 + c]) }
                    if !(abs(Double(got) - want) <= 2e-5 * max(1, abs(want))) { bad += 1 }
                }
            }
            #expect(bad == 0, "\(shape) native \(native): \(bad) wrong values")
            #expect(!BLAS.canFuseAttention(headSize: 24) && !BLAS.canFuseAttention(headSize: 0))
        }
    }

    /// A prepared model gives what BLAS gives, and notices when its parameters change (as after a
    /// training step): it packs them again rather than answer with the old weights.
    @Test func preparedModelFollowsItsParameters() throws {
        var config = try BertConfig.preset("tiny")
        config.vocabSize = 100
        let model = try BertModel(config: config)
        model.initializeWeights(seed: 3)
        var rng = SeededRandom(seed: 5)
        let ids = (0..<(2 * 40)).map { _ in Int32(rng.next() % 100) }
        let batch = EncoderBatch(batchSize: 2, sequenceLength: 40, inputIds: ids)
        let plain = try model.forward(batch).lastHiddenState
        model.prepareForInference(always: true)
        let packed = try model.forward(batch).lastHiddenState
        #expect(maxDiff(plain, packed) <= 1e-5)

        let p = model.parameters
        for i in 0..<p.layout.totalCount { p.data.pointer[i] *= 0.9 }
        let afterChange = try model.forward(batch).lastHiddenState
        model.releaseInferenceWeights()
        let expected = try model.forward(batch).lastHiddenState
        #expect(maxDiff(afterChange, expected) <= 1e-5)
        #expect(maxDiff(afterChange, packed) > 1e-3)
    }

    private func maxDiff(_ x: [Float], _ y: [Float]) -> Float {
        zip(x, y).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
