import BertCompute
import Foundation
import Testing

/// Finite-difference checks of every backward kernel: the loss is Σ w·output for random w, the
/// analytic gradient comes from the backward given dy = w, the numerical one from central
/// differences of the (Float) forward, summed in Double.
@Suite struct GradientTests {
    var rng = SeededRandom(seed: 2024)

    mutating func random(_ n: Int, scale: Double = 1) -> [Float] {
        (0..<n).map { _ in Float(rng.nextGaussian() * scale) }
    }

    /// Compares `analytic` with central differences of `loss` with respect to `values`.
    func check(
        _ name: String, _ values: [Float], analytic: [Float], eps: Float = 1e-2,
        loss: ([Float]) -> Double
    ) {
        #expect(values.count == analytic.count, "\(name): gradient size")
        var worst = 0.0
        for i in values.indices {
            var plus = values, minus = values
            plus[i] += eps
            minus[i] -= eps
            let numeric = (loss(plus) - loss(minus)) / (2 * Double(eps))
            let err = abs(numeric - Double(analytic[i])) / (2e-3 + 1e-2 * abs(numeric))
            worst = max(worst, err)
            if err > 1 {
                Issue.record("\(name)[\(i)]: analytic \(analytic[i]) numeric \(numeric)")
                return
            }
        }
        #expect(worst <= 1, "\(name)")
    }

    func dot(_ a: [Float], _ b: [Float]) -> Double { zip(a, b).reduce(0) { $0 + Double($1.0) * Double($1.1) } }

    @Test mutating func layerNorm() {
        let rows = 3, cols = 21
        let x = random(rows * cols, scale: 2), gamma = random(cols), beta = random(cols), w = random(rows * cols)
        func forward(_ x: [Float], _ g: [Float], _ b: [Float]) -> ([Float], [Float], [Float]) {
            var y = [Float](repeating: 0, count: rows * cols), mean = [Float](repeating: 0, count: rows), rstd = mean
            Kernels.layerNorm(
                x, output: &y, gamma: g, beta: b, eps: 1e-5, cols: cols, rows: 0..<rows, mean: &mean, rstd: &rstd)
            return (y, mean, rstd)
        }
        let (_, mean, rstd) = forward(x, gamma, beta)
        var dx = [Float](repeating: 0, count: rows * cols), dg = [Float](repeating: 0, count: cols), db = dg
        Kernels.layerNormBackward(
            dy: w, x: x, mean: mean, rstd: rstd, gamma: gamma, dx: &dx, dgamma: &dg, dbeta: &db,
            cols: cols, rows: 0..<rows)
        check("layerNorm dx", x, analytic: dx) { dot(forward($0, gamma, beta).0, w) }
        check("layerNorm dgamma", gamma, analytic: dg) { dot(forward(x, $0, beta).0, w) }
        check("layerNorm dbeta", beta, analytic: db) { dot(forward(x, gamma, $0).0, w) }
    }

    @Test(arguments: [Activation.gelu, .geluTanh, .relu])
    mutating func activation(_ act: Activation) {
        var x = random(37, scale: 2.5)
        if act == .relu { x = x.map { abs($0) < 0.05 ? $0 + 0.2 : $0 } }  // keep away from the kink
        let w = random(37)
        func forward(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: x.count)
            Kernels.activation(x, output: &y, cols: x.count, rows: 0..<1, activation: act)
            return y
        }
        var dx = [Float](repeating: 0, count: 37)
        Kernels.activationBackward(dy: w, x: x, dx: &dx, count: 37, activation: act)
        check("\(act) dx", x, analytic: dx, eps: 1e-2) { dot(forward($0), w) }
    }

    @Test mutating func softmaxAndTanh() {
        let rows = 2, cols = 19
        let s = random(rows * cols, scale: 2), w = random(rows * cols)
        func forward(_ s: [Float]) -> [Float] {
            var p = s
            Kernels.softmax(&p, cols: cols, ld: cols, rows: 0..<rows)
            return p
        }
        var ds = [Float](repeating: 0, count: rows * cols)
        Kernels.softmaxBackward(p: forward(s), dp: w, ds: &ds, cols: cols, ld: cols, rows: 0..<rows)
        check("softmax ds", s, analytic: ds, eps: 1e-2) { dot(forward($0), w) }

        let x = random(21), bias = random(21), wt = random(21)
        func tanhForward(_ x: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: 21)
            var xm = x
            Kernels.biasTanh(&xm, bias: bias, output: &y, cols: 21, rows: 0..<1)
            return y
        }
        var dx = [Float](repeating: 0, count: 21)
        Kernels.tanhBackward(dy: wt, y: tanhForward(x), dx: &dx, count: 21)
        check("tanh dx", x, analytic: dx) { dot(tanhForward($0), wt) }
    }

    @Test mutating func linear() {
        let m = 5, k = 7, n = 6
        let x = random(m * k), weight = random(n * k), bias = random(n), w = random(m * n)
        func forward(_ x: [Float], _ weight: [Float], _ bias: [Float]) -> [Float] {
            var y = [Float](repeating: 0, count: m * n)
            Kernels.fillRows(&y, with: bias, cols: n, rows: 0..<m)
            BLAS.sgemm(transB: true, m: m, n: n, k: k, a: x, lda: k, b: weight, ldb: k, beta: 1, c: &y, ldc: n)
            return y
        }
        var dx = [Float](repeating: 0, count: m * k), dw = [Float](repeating: 0, count: n * k),
            db = [Float](repeating: 0, count: n)
        BLAS.linearBackward(dy: w, x: x, w: weight, m: m, n: n, k: k, dx: &dx, dw: &dw, db: &db)
        check("linear dx", x, analytic: dx) { dot(forward($0, weight, bias), w) }
        check("linear dw", weight, analytic: dw) { dot(forward(x, $0, bias), w) }
        check("linear db", bias, analytic: db) { dot(forward(x, weight, $0), w) }
    }

    @Test mutating func embeddings() {
        let cols = 9, vocab = 5, tokens = 6
        let ids: [Int32] = [1, 3, 1, 0, 4, 1], pos: [Int32] = [0, 1, 2, 3, 4, 5], types: [Int32] = [0, 0, 0, 1, 1, 1]
        let table = random(vocab * cols), positions = random(6 * cols), typeTable = random(2 * cols),
            w = random(tokens * cols)
        func forward(_ table: [Float]) -> [Float] {
            var x = [Float](repeating: 0, count: tokens * cols)
            Kernels.gatherSum3(
                &x, cols: cols, rows: 0..<tokens, a: table, ia: ids, b: positions, ib: pos, c: typeTable, ic: types)
            return x
        }
        var dtable = [Float](repeating: 0, count: vocab * cols)
        Kernels.embeddingBackward(dy: w, ids: ids, dtable: &dtable, cols: cols, rows: 0..<tokens)
        check("embedding dtable", table, analytic: dtable) { dot(forward($0), w) }
        #expect(dtable[(2 * cols)..<(3 * cols)].allSatisfy { $0 == 0 }, "an unused row gets no gradient")
    }
}
