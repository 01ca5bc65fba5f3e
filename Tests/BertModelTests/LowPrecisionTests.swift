import Bert
import BertCompute
import Foundation
import Testing

// The int8 and bf16 products: each kernel (the AVX-512 one this CPU runs, and the portable one)
// against a double-precision reference at odd shapes, then the real all-MiniLM-L6-v2 in each
// precision against its float embeddings.

/// A deterministic value in [-1, 1).
private func noise(_ i: Int, _ seed: Int) -> Float {
    var x = UInt64(truncatingIfNeeded: i &* 2_654_435_761 &+ seed &* 40503 &+ 1)
    x ^= x >> 33
    x = x &* 0xff51_afd7_ed55_8ccd
    x ^= x >> 33
    return Float(x % 2_000_001) / 1_000_000 - 1
}

/// Odd shapes: one row and a few (remainders of the 6-row tiles), panels not a multiple of the
/// 4-panel groups, inputs not a multiple of 4 (or 2), and a row of zeros.
private let shapes = [(1, 16, 1), (5, 48, 3), (7, 80, 77), (37, 16, 385), (13, 112, 64), (98, 64, 30)]

struct LowPrecisionKernelTests {
    @Test(arguments: [false, true]) func int8ProductsEqualTheDoubleReferenceOfTheQuantizedValues(portable: Bool) {
        for (m, n, k) in shapes {
            var a = (0..<(m * k)).map { noise($0, 1) * 3 }
            for p in 0..<k { a[(m / 2) * k + p] = 0 }  // a zero row: scale 1, all zero
            let w = (0..<(n * k)).map { noise($0, 2) * 0.2 }
            let bias = (0..<n).map { noise($0, 3) }
            let weights = w.withUnsafeBufferPointer { Int8Weights($0.baseAddress!, n: n, k: k) }
            var c = [Float](repeating: .nan, count: m * n)
            a.withUnsafeBufferPointer { ap in
                w.withUnsafeBufferPointer { wp in
                    BLAS.int8Gemm(
                        a: ap.baseAddress!, lda: k, rows: m, w: weights, floatWeight: wp.baseAddress!, bias: bias,
                        c: &c, ldc: n, portable: portable)
                }
            }
            // The reference: the same quantization (asymmetric per row over its range with 0 in
            // it), then exact integer products, in Double.
            var worst = 0.0, worstFloat = 0.0
            for i in 0..<m {
                let row = Array(a[(i * k)..<(i * k + k)])
                let lo = min(row.min()!, 0), hi = max(row.max()!, 0)
                let scale: Float = hi > lo ? (hi - lo) / 255 : 1
                let zero = min(max(Int((-lo / scale).rounded(.toNearestOrEven)), 0), 255)
                let inverse = 1 / scale
                let qa = row.map { min(max(Int(($0 * inverse).rounded(.toNearestOrEven)) + zero, 0), 255) - zero }
                for j in 0..<n {
                    let sw = weights.scales[j]
                    var dot = 0, exact = Double(bias[j])
                    for p in 0..<k {
                        dot += qa[p] * Int((w[j * k + p] / sw).rounded(.toNearestOrEven))
                        exact += Double(row[p]) * Double(w[j * k + p])
                    }
                    let expected = Double(scale) * Double(sw) * Double(dot) + Double(bias[j])
                    worst = max(worst, abs(Double(c[i * n + j]) - expected) / max(1, abs(expected)))
                    worstFloat = max(worstFloat, abs(Double(c[i * n + j]) - exact))
                }
            }
            #expect(worst < 2e-6, "\(m)x\(n)x\(k): \(worst)")
            // And the quantization error itself stays small next to the values (|A·W| up to ~0.6·k/3).
            #expect(worstFloat < 0.02 * Double(k).squareRoot() + 1e-3, "\(m)x\(n)x\(k): \(worstFloat)")
        }
    }

    @Test(arguments: [false, true]) func bf16ProductsEqualTheDoubleReferenceOfTheRoundedValues(portable: Bool) {
        func bf16(_ x: Float) -> Double {
            // Nearest, ties to even: the kernels' rounding.
            let u = x.bitPattern
            let rounded = (u &+ 0x7fff &+ ((u >> 16) & 1)) & 0xffff_0000
            return Double(Float(bitPattern: rounded))
        }
        for (m, n, k) in shapes {
            let a = (0..<(m * k)).map { noise($0, 4) * 3 }
            let w = (0..<(n * k)).map { noise($0, 5) * 0.2 }
            let bias = (0..<n).map { noise($0, 6) }
            let weights = w.withUnsafeBufferPointer { BF16Weights($0.baseAddress!, n: n, k: k) }
            var c = [Float](repeating: .nan, count: m * n)
            a.withUnsafeBufferPointer { ap in
                bias.withUnsafeBufferPointer { bp in
                    BLAS.bf16Gemm(
                        a: ap.baseAddress!, lda: k, rows: m, w: weights, bias: bp.baseAddress!, c: &c, ldc: n,
                        portable: portable)
                }
            }
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    var expected = Double(bias[j]), size = abs(Double(bias[j]))
                    for p in 0..<k {
                        let term = bf16(a[i * k + p]) * bf16(w[j * k + p])
                        expected += term
                        size += abs(term)
                    }
                    // Float accumulation: a few ulps of the sum of magnitudes.
                    worst = max(worst, abs(Double(c[i * n + j]) - expected) / max(size, 1e-30))
                }
            }
            #expect(worst < 1e-6, "\(m)x\(n)x\(k): \(worst)")
        }
    }

    @Test(arguments: [false, true]) func outlierColumnsAreMultipliedInFloat(portable: Bool) {
        // Inputs about 1 with two columns near 40 (as BERT's outlier features): in int8 with the
        // rest they would cost every other value its precision; apart, in float, the product
        // stays as close as with no outliers at all.
        let (m, n, k) = (11, 32, 96)
        var a = (0..<(m * k)).map { noise($0, 10) }
        for i in 0..<m { a[i * k + 5] = 40 + Float(i); a[i * k + 70] = -35 }
        let w = (0..<(n * k)).map { noise($0, 11) * 0.1 }
        let bias = [Float](repeating: 0, count: n)
        func product(float: Bool, withFloatWeight: Bool = true) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            let weights = w.withUnsafeBufferPointer { Int8Weights($0.baseAddress!, n: n, k: k) }
            a.withUnsafeBufferPointer { ap in
                w.withUnsafeBufferPointer { wp in
                    BLAS.int8Gemm(
                        a: ap.baseAddress!, lda: k, rows: m, w: weights,
                        floatWeight: withFloatWeight ? wp.baseAddress! : nil, bias: bias,
                        c: &c, ldc: n, outlierThreshold: float ? BLAS.int8OutlierThreshold : .infinity,
                        portable: portable)
                }
            }
            return c
        }
        func error(_ c: [Float]) -> Double {
            var worst = 0.0
            for i in 0..<m {
                for j in 0..<n {
                    let exact = (0..<k).reduce(0.0) { $0 + Double(a[i * k + $1]) * Double(w[j * k + $1]) }
                    worst = max(worst, abs(Double(c[i * n + j]) - exact))
                }
            }
            return worst
        }
        let apart = error(product(float: true)), together = error(product(float: false))
        #expect(apart < 0.02, "\(apart)")
        #expect(together > 3 * apart, "apart \(apart), together \(together)")
        // Against the int8 weights' own columns (a model stored in int8 has no float ones): their
        // rounding, times values of 40, shows, but the rows' precision is still kept.
        let dequantized = error(product(float: true, withFloatWeight: false))
        #expect(dequantized < 0.05 && dequantized > apart, "\(dequantized)")
        #expect(together > 2 * dequantized, "dequantized \(dequantized), together \(together)")
    }

    @Test(arguments: [false, true]) func aRowsResultDoesNotDependOnItsBatch(portable: Bool) {
        // Row 0 alone, then with rows whose outliers sit in other columns (and a NaN): the same
        // bits, and the NaN reaches its own row's outputs only.
        let (n, k) = (48, 70)
        let first = (0..<k).map { noise($0, 12) * 2 }
        var others = (0..<(4 * k)).map { noise($0, 13) * 2 }
        others[3] = 50
        others[k + 9] = -20
        others[2 * k + 40] = .nan
        others[3 * k + 1] = .infinity
        let w = (0..<(n * k)).map { noise($0, 14) * 0.1 }
        let bias = (0..<n).map { noise($0, 15) }
        let weights = w.withUnsafeBufferPointer { Int8Weights($0.baseAddress!, n: n, k: k) }
        func product(_ a: [Float]) -> [Float] {
            var c = [Float](repeating: 0, count: a.count / k * n)
            w.withUnsafeBufferPointer { wp in
                BLAS.int8Gemm(
                    a: a, lda: k, rows: a.count / k, w: weights, floatWeight: wp.baseAddress!, bias: bias, c: &c,
                    ldc: n, portable: portable)
            }
            return c
        }
        let alone = product(first), together = product(first + others)
        #expect(alone.map(\.bitPattern) == together[0..<n].map(\.bitPattern))
        #expect(alone.allSatisfy { $0.isFinite })
        #expect(together[(3 * n)..<(4 * n)].allSatisfy { $0.isNaN })
        #expect(together[(4 * n)..<(5 * n)].allSatisfy { !$0.isFinite })
        #expect(together[n..<(3 * n)].allSatisfy { $0.isFinite })
    }

    @Test func theFastKernelsGiveThePortableOnesBits() {
        let (m, n, k) = (29, 80, 131)
        var a = (0..<(m * k)).map { noise($0, 7) }
        for i in stride(from: 0, to: m, by: 3) { a[i * k + (i * 7) % k] = 9 + Float(i) }  // outliers too
        let w = (0..<(n * k)).map { noise($0, 8) * 0.1 }
        let bias = (0..<n).map { noise($0, 9) }
        let i8 = w.withUnsafeBufferPointer { Int8Weights($0.baseAddress!, n: n, k: k) }
        let b16 = w.withUnsafeBufferPointer { BF16Weights($0.baseAddress!, n: n, k: k) }
        func run(_ portable: Bool, int8: Bool) -> [Float] {
            var c = [Float](repeating: 0, count: m * n)
            a.withUnsafeBufferPointer { ap in
                bias.withUnsafeBufferPointer { bp in
                    if int8 {
                        BLAS.int8Gemm(
                            a: ap.baseAddress!, lda: k, rows: m, w: i8, floatWeight: w, bias: bp.baseAddress!, c: &c,
                            ldc: n,
                            portable: portable)
                    } else {
                        BLAS.bf16Gemm(
                            a: ap.baseAddress!, lda: k, rows: m, w: b16, bias: bp.baseAddress!, c: &c, ldc: n,
                            portable: portable)
                    }
                }
            }
            return c
        }
        #expect(run(false, int8: true).map(\.bitPattern) == run(true, int8: true).map(\.bitPattern))
        #expect(run(false, int8: false).map(\.bitPattern) == run(true, int8: false).map(\.bitPattern))
    }
}

@Suite(.enabled(if: ModelFixtures.required || ModelFixtures.haveMiniLM))
struct LowPrecisionModelTests {
    /// Real sentences: the parity inputs and a few more, long and short, in three scripts.
    func sentences() throws -> [String] {
        let parity =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: ModelFixtures.url("minilm_inputs.json"))) as! [String]
        return parity + [
            "Rain.", "猫はソファの上で寝ています。", "Ein Mann spielt Gitarre, und das Publikum hört zu.",
            String(repeating: "The committee approved the plan to rebuild the old bridge over the river. ", count: 12),
        ]
    }

    @Test(arguments: [(Precision.bf16, 0.9995), (Precision.int8, 0.995)])
    func embeddingsStayCloseToFloat(precision: Precision, minimum: Double) throws {
        let texts = try sentences()
        let float = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder).embed(texts)
        let low = try SentenceEmbedder(folder: ModelFixtures.miniLMFolder, precision: precision)
        #expect(low.model.precision == precision)
        let vectors = try low.embed(texts)
        let cosines = zip(float, vectors).map { a, b in Double(zip(a, b).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
        let mean = cosines.reduce(0, +) / Double(cosines.count)
        print("\(precision): cosine to fp32 min \(cosines.min()!) mean \(mean) over \(texts.count) sentences")
        #expect(cosines.min()! >= minimum, "\(cosines)")
        // Not the float path in disguise: the vectors differ.
        #expect(cosines.contains { $0 < 0.999_999_9 })
    }
}
