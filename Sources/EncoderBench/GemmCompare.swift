// `EncoderBench --gemm [--threads N]`: our pre-packed matrix product (BLAS.packedGemmNT) beside
// BLAS's sgemm on the shapes of BERT's linear layers, one thread per row block as the encoder
// runs them: GFLOP/s of each, their ratio, and the largest difference between the two results.
import BertCompute
import Foundation

func compareGemm(threads: Int) {
    Compute.threads = threads
    // (rows, out, in): MiniLM at 8x128 split over 2 threads, at 8x512 (or 32x128) split over 2
    // threads, its 1x128, BERT-base at 8x128 on one thread.
    let shapes = [
        (512, 1152, 384), (512, 384, 384), (512, 1536, 384), (512, 384, 1536), (2048, 1536, 384), (2048, 384, 1536),
        (128, 1536, 384), (128, 384, 1536), (1024, 3072, 768), (1024, 768, 3072),
    ]
    print("rows x out x in     BLAS GFLOP/s  packed GFLOP/s  packed/BLAS  max |diff|")
    for (m, n, k) in shapes {
        let a = FloatBuffer(count: m * k), w = FloatBuffer(count: n * k), bias = FloatBuffer(count: n)
        let c1 = FloatBuffer(count: m * n), c2 = FloatBuffer(count: m * n)
        var g = SeededRandom(seed: 7)
        for i in 0..<a.count { a.pointer[i] = g.nextUnitFloat() - 0.5 }
        for i in 0..<w.count { w.pointer[i] = (g.nextUnitFloat() - 0.5) * 0.1 }
        for i in 0..<n { bias.pointer[i] = g.nextUnitFloat() }
        let packed = PackedWeights(w.pointer, n: n, k: k)
        nonisolated(unsafe) let ap = a.pointer, wp = w.pointer, bp = bias.pointer, c1p = c1.pointer, c2p = c2.pointer
        func blas() {
            Compute.parallelRanges(m, parts: threads, granularity: 8) { rows in
                Kernels.fillRows(c1p, with: bp, cols: n, rows: rows)
                BLAS.sgemm(
                    transB: true, m: rows.count, n: n, k: k, a: ap + rows.lowerBound * k, lda: k,
                    b: wp, ldb: k, beta: 1, c: c1p + rows.lowerBound * n, ldc: n)
            }
        }
        func ours() {
            Compute.parallelRanges(m, parts: threads, granularity: 6) { rows in
                BLAS.packedGemmNT(a: ap, lda: k, w: packed, bias: bp, c: c2p, ldc: n, rows: rows, panels: 0..<(n / 16))
            }
        }
        let flops = 2 * Double(m * n * k)
        var tb = Double.infinity, to = Double.infinity
        for _ in 0..<5 {
            // Alternating, so that a slow moment of the (shared) machine hits both sides.
            tb = min(tb, time(budget: 0, minRepeat: 20, blas).best)
            to = min(to, time(budget: 0, minRepeat: 20, ours).best)
        }
        var diff: Float = 0
        for i in 0..<(m * n) { diff = max(diff, abs(c1.pointer[i] - c2.pointer[i])) }
        print(
            String(
                format: "%4d x %4d x %4d   %12.1f  %14.1f  %11.3f  %.2e", m, n, k, flops / tb / 1e9, flops / to / 1e9,
                tb / to, diff))
    }
}
