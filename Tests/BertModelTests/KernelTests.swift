import BertCompute
import Foundation
import Testing

/// The compute core's kernels against plain Double arithmetic.
@Suite struct KernelTests {
    func apply(_ f: (Vec16) -> Vec16, _ xs: [Float]) -> [Float] {
        var out: [Float] = []
        var i = 0
        while i < xs.count {
            var v = Vec16()
            for j in 0..<16 { v[j] = i + j < xs.count ? xs[i + j] : 0 }
            let y = f(v)
            for j in 0..<16 where i + j < xs.count { out.append(y[j]) }
            i += 16
        }
        return out
    }

    @Test func expErfTanhAreAccurate() {
        let xs = stride(from: Float(-12), through: 12, by: 0.0137).map { $0 }
        let e = apply(vexp, xs), r = apply(verf, xs), t = apply(vtanh, xs)
        for (i, x) in xs.enumerated() {
            let ref = Foundation.exp(Double(x))
            #expect(abs(Double(e[i]) - ref) <= 3e-7 * ref, "exp(\(x))")
            #expect(abs(Double(r[i]) - Foundation.erf(Double(x))) <= 5e-7, "erf(\(x))")
            #expect(abs(Double(t[i]) - Foundation.tanh(Double(x))) <= 5e-7, "tanh(\(x))")
        }
        #expect(apply(vexp, [-100, -88, 100]).prefix(2).allSatisfy { $0 == 0 })
        #expect(apply(vexp, [100])[0].isFinite)
    }

    @Test func geluBothForms() {
        let xs = stride(from: Float(-8), through: 8, by: 0.01).map { $0 }
        let exact = apply(vgeluErf, xs), approx = apply(vgeluTanh, xs)
        for (i, x) in xs.enumerated() {
            let d = Double(x)
            let refExact = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            let refTanh = 0.5 * d * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * (d + 0.044715 * d * d * d)))
            #expect(abs(Double(exact[i]) - refExact) <= 5e-6, "gelu(\(x))")
            #expect(abs(Double(approx[i]) - refTanh) <= 5e-6, "gelu_tanh(\(x))")
        }
        #expect(Activation(huggingFaceName: "gelu") == .gelu)
        #expect(Activation(huggingFaceName: "gelu_new") == .geluTanh)
        #expect(Activation(huggingFaceName: "gelu_pytorch_tanh") == .geluTanh)
        #expect(Activation(huggingFaceName: "swish") == nil)
    }

    @Test(arguments: [false, true]) func geluOverRowsInBothKernels(native: Bool) {
        // Kernels.activation: the Swift vectors or CKernels' AVX-512 (where the CPU has it), with
        // a row length that leaves a tail; NaN and infinities are not made finite.
        let cols = 37
        var xs = stride(from: Float(-8), through: 8, by: 0.01).map { $0 }
        xs += [.nan, .infinity, -.infinity]
        while xs.count % cols != 0 { xs.append(0.5) }
        var y = [Float](repeating: 0, count: xs.count)
        Kernels.activation(xs, output: &y, cols: cols, rows: 0..<(xs.count / cols), activation: .gelu, native: native)
        for (i, x) in xs.enumerated() where x.isFinite {
            let d = Double(x)
            let ref = 0.5 * d * (1 + Foundation.erf(d / 2.0.squareRoot()))
            #expect(abs(Double(y[i]) - ref) <= 5e-6, "gelu(\(x)) native \(native)")
        }
        let special = xs.firstIndex { $0.isNaN }!
        #expect(y[special].isNaN && y[special + 1] == .infinity && !y[special + 2].isFinite)
    }

    @Test(arguments: [1, 5, 16, 37, 129])
    func softmaxAndLayerNorm(_ cols: Int) {
        for native in [false, true] { softmaxAndLayerNorm(cols, native: native) }
    }

    func softmaxAndLayerNorm(_ cols: Int, native: Bool) {
        var rng = SeededRandom(seed: UInt64(cols))
        let rows = 3
        var x = (0..<(rows * cols)).map { _ in Float(rng.nextGaussian() * 4) }
        let original = x
        x.withUnsafeMutableBufferPointer {
            Kernels.softmax($0.baseAddress!, cols: cols, ld: cols, rows: 0..<rows, native: native)
        }
        for r in 0..<rows {
            let row = original[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.max()!
            let z = row.map { Foundation.exp($0 - m) }.reduce(0, +)
            for c in 0..<cols {
                #expect(abs(Double(x[r * cols + c]) - Foundation.exp(row[c] - m) / z) <= 1e-6)
            }
        }
        let gamma = (0..<cols).map { _ in Float(rng.nextGaussian()) },
            beta = (0..<cols).map { _ in Float(rng.nextGaussian()) }
        var y = [Float](repeating: 0, count: rows * cols)
        var mean = [Float](repeating: 0, count: rows), rstd = [Float](repeating: 0, count: rows)
        original.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                Kernels.layerNorm(
                    xp.baseAddress!, output: yp.baseAddress!, gamma: gamma, beta: beta, eps: 1e-12,
                    cols: cols, rows: 0..<rows, mean: &mean, rstd: &rstd, native: native)
            }
        }
        for r in 0..<rows {
            let row = original[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let mu = row.reduce(0, +) / Double(cols)
            let variance = row.map { ($0 - mu) * ($0 - mu) }.reduce(0, +) / Double(cols)
            #expect(abs(Double(mean[r]) - mu) <= 1e-5)
            for c in 0..<cols {
                let ref = (row[c] - mu) / (variance + 1e-12).squareRoot() * Double(gamma[c]) + Double(beta[c])
                #expect(abs(Double(y[r * cols + c]) - ref) <= 2e-5 * max(1, abs(ref)))
            }
        }
    }

    /// Every path of the matrix products (single call, row split, column split, small-row kernel)
    /// against a Double reference, on sizes that are not multiples of the kernels' blocks.
    @Test(arguments: [(1, 7, 5), (3, 37, 13), (17, 40, 33), (24, 385, 9), (70, 64, 130), (600, 33, 70)])
    func matrixProducts(_ shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        var rng = SeededRandom(seed: UInt64(m * 1000 + k))
        let a = (0..<(m * k)).map { _ in Float(rng.nextGaussian()) }
        let b = (0..<(n * k)).map { _ in Float(rng.nextGaussian()) }
        let bias = (0..<n).map { _ in Float(rng.nextGaussian()) }
        var ref = [Double](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for p in 0..<k { s += Double(a[i * k + p]) * Double(b[j * k + p]) }
                ref[i * n + j] = s
            }
        }
        // The split is passed in, not set through Compute.threads: other suites run alongside and
        // size their scratch by it (a change in the middle of their forward overran it).
        for threads in [1, 2, 3] {
            var c = [Float](repeating: .nan, count: m * n)
            BLAS.parallelSgemm(
                transB: true, m: m, n: n, k: k, a: a, lda: k, b: b, ldb: k, c: &c, ldc: n, threads: threads)
            #expect(
                zip(c, ref).allSatisfy { abs(Double($0) - $1) <= 1e-4 * max(1, abs($1)) },
                "sgemm \(shape) threads \(threads)")
        }
        // The small-row kernel: CKernels' AVX-512 one (where the CPU has it) and the Swift one.
        for native in [true, false] {
            var c = [Float](repeating: .nan, count: m * n)
            BLAS.smallGemmNT(
                m: m, k: k, a: a, lda: k, b: b, ldb: k, bias: bias, c: &c, ldc: n, cols: 0..<n, native: native)
            let bad = (0..<(m * n)).filter { e in
                let want = ref[e] + Double(bias[e % n])
                return !(abs(Double(c[e]) - want) <= 1e-4 * max(1, abs(want)))
            }
            #expect(bad.isEmpty, "small \(shape) native \(native): \(bad.count) wrong values")
        }
    }

    /// Both products (the loaded BLAS and the built-in one used without it) in every transposition,
    /// with alpha and beta, against a Double reference, at shapes that are not multiples of blocks
    /// and with leading dimensions past the rows.
    @Test(arguments: [(1, 1, 1), (3, 7, 5), (17, 40, 33), (64, 3, 129)])
    func productsEveryTransposition(_ shape: (Int, Int, Int)) {
        let (m, k, n) = shape
        var rng = SeededRandom(seed: UInt64(m * 7 + k * 3 + n))
        let pad = 3
        for transA in [false, true] {
            for transB in [false, true] {
                let lda = (transA ? m : k) + pad, ldb = (transB ? k : n) + pad, ldc = n + pad
                let a = (0..<((transA ? k : m) * lda)).map { _ in Float(rng.nextGaussian()) }
                let b = (0..<((transB ? n : k) * ldb)).map { _ in Float(rng.nextGaussian()) }
                let c0 = (0..<(m * ldc)).map { _ in Float(rng.nextGaussian()) }
                for (alpha, beta) in [(Float(1), Float(0)), (0.5, 1), (-2, 0.25)] {
                    var want = [Double](repeating: 0, count: m * n)
                    for i in 0..<m {
                        for j in 0..<n {
                            var s = 0.0
                            for p in 0..<k {
                                let x = transA ? a[p * lda + i] : a[i * lda + p]
                                let y = transB ? b[j * ldb + p] : b[p * ldb + j]
                                s += Double(x) * Double(y)
                            }
                            want[i * n + j] = Double(alpha) * s + Double(beta) * Double(c0[i * ldc + j])
                        }
                    }
                    for reference in [false, true] {
                        var c = c0
                        // beta 0 overwrites C: a NaN there must not survive.
                        if beta == 0 { c[0] = .nan }
                        if reference {
                            BLAS.referenceSgemm(
                                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
                        } else {
                            BLAS.sgemm(
                                transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                                b: b, ldb: ldb, beta: beta, c: &c, ldc: ldc)
                        }
                        let what = "\(reference ? "reference" : BLAS.library) \(shape) tA \(transA) tB \(transB)"
                        for i in 0..<m {
                            for j in 0..<n {
                                let got = Double(c[i * ldc + j]), w = want[i * n + j]
                                #expect(abs(got - w) <= 1e-4 * max(1, abs(w)), "\(what) [\(i), \(j)]")
                            }
                            // The padding past n columns is never written.
                            #expect(c[(i * ldc + n)..<(i * ldc + ldc)] == c0[(i * ldc + n)..<(i * ldc + ldc)])
                        }
                    }
                }
            }
        }
    }

    #if os(Linux)
        /// The test machines have OpenBLAS: a product that fell back to the built-in kernel would
        /// be correct and several times slower, so the test says so instead.
        @Test func openBLASIsLoaded() {
            #expect(BLAS.library.hasPrefix("libopenblas"), "BLAS is \(BLAS.library)")
        }
    #endif
}
