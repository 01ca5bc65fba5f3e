import Foundation
// Backward passes of the row kernels (the pretraining issue builds its training step on these).
// Each takes what its forward kept (LayerNorm's input, mean and 1/std; the activation's input;
// softmax's output) and the gradient of the output, and returns the gradient of the input;
// parameter gradients are accumulated (+=), so a caller can sum them over row blocks and batches.

extension Kernels {
    /// LayerNorm backward. x is the forward's input, mean/rstd its saved statistics. Writes dx
    /// (may alias dy), adds into dgamma and dbeta.
    public static func layerNormBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
        mean: UnsafePointer<Float>, rstd: UnsafePointer<Float>,
        gamma: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>,
        dgamma: UnsafeMutablePointer<Float>, dbeta: UnsafeMutablePointer<Float>,
        cols: Int, rows: Range<Int>
    ) {
        let n = Float(cols)
        for r in rows {
            let xr = x + r * cols, dyr = dy + r * cols, dxr = dx + r * cols
            let mu = mean[r], s = rstd[r]
            // Σ dxhat and Σ dxhat·xhat, where xhat = (x − mean)·rstd and dxhat = dy·gamma.
            var sum1: Float = 0, sum2: Float = 0
            for c in 0..<cols {
                let xhat = (xr[c] - mu) * s
                let g = dyr[c] * gamma[c]
                sum1 += g
                sum2 += g * xhat
                dgamma[c] += dyr[c] * xhat
                dbeta[c] += dyr[c]
            }
            let m1 = sum1 / n, m2 = sum2 / n
            for c in 0..<cols {
                let xhat = (xr[c] - mu) * s
                dxr[c] = s * (dyr[c] * gamma[c] - m1 - xhat * m2)
            }
        }
    }

    /// The activation's backward: dx = dy · act'(x), x the forward's input. dx may alias dy.
    public static func activationBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>,
        dx: UnsafeMutablePointer<Float>, count: Int, activation: Activation
    ) {
        switch activation {
        case .gelu:
            // d/dx x·Φ(x) = Φ(x) + x·φ(x)
            let invSqrt2: Float = 0.707_106_781_186_547_5, invSqrt2Pi: Float = 0.398_942_280_401_432_7
            var i = 0
            while i < count {
                let n = min(16, count - i)
                let v = n == 16 ? loadVec(x + i) : loadPartial(x + i, n)
                let g = n == 16 ? loadVec(dy + i) : loadPartial(dy + i, n)
                let cdf = 0.5 * (1 + verf(v * invSqrt2))
                let pdf = invSqrt2Pi * vexp(-0.5 * v * v)
                let out = g * (cdf + v * pdf)
                if n == 16 { storeVec(out, dx + i) } else { storePartial(out, dx + i, n) }
                i += 16
            }
        case .geluTanh:
            let k: Float = 0.797_884_560_802_865_4, a: Float = 0.044_715
            var i = 0
            while i < count {
                let n = min(16, count - i)
                let v = n == 16 ? loadVec(x + i) : loadPartial(x + i, n)
                let g = n == 16 ? loadVec(dy + i) : loadPartial(dy + i, n)
                let v2: Vec16 = v * v
                let u: Vec16 = k * (v + a * v2 * v)
                let t: Vec16 = vtanh(u)
                let du: Vec16 = k * (1 + 3 * a * v2)
                let d1: Vec16 = 0.5 * (1 + t)
                let d2: Vec16 = 0.5 * v * (1 - t * t) * du
                let out: Vec16 = g * (d1 + d2)
                if n == 16 { storeVec(out, dx + i) } else { storePartial(out, dx + i, n) }
                i += 16
            }
        case .relu:
            for i in 0..<count { dx[i] = x[i] > 0 ? dy[i] : 0 }
        }
    }

    /// Softmax backward per row: ds = p ⊙ (dp − Σ p·dp), p the forward's output. ds may alias dp.
    public static func softmaxBackward(
        p: UnsafePointer<Float>, dp: UnsafePointer<Float>, ds: UnsafeMutablePointer<Float>,
        cols: Int, ld: Int, rows: Range<Int>
    ) {
        for r in rows {
            let pr = p + r * ld, dpr = dp + r * ld, dsr = ds + r * ld
            var dot: Float = 0
            for c in 0..<cols { dot += pr[c] * dpr[c] }
            for c in 0..<cols { dsr[c] = pr[c] * (dpr[c] - dot) }
        }
    }

    /// tanh backward: dx = dy · (1 − y²), y the forward's output. dx may alias dy.
    public static func tanhBackward(
        dy: UnsafePointer<Float>, y: UnsafePointer<Float>, dx: UnsafeMutablePointer<Float>, count: Int
    ) {
        for i in 0..<count { dx[i] = dy[i] * (1 - y[i] * y[i]) }
    }

    /// bias gradient of a linear layer: db[j] += Σ_r dy[r, j].
    public static func biasBackward(
        dy: UnsafePointer<Float>, db: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>
    ) {
        for r in rows {
            let dyr = dy + r * cols
            var c = 0
            while c + 16 <= cols { storeVec(loadVec(db + c) + loadVec(dyr + c), db + c); c += 16 }
            while c < cols { db[c] += dyr[c]; c += 1 }
        }
    }

    /// Embedding backward: table[ids[t], :] += dy[t, :] (rows sharing an id accumulate).
    public static func embeddingBackward(
        dy: UnsafePointer<Float>, ids: UnsafePointer<Int32>,
        dtable: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>
    ) {
        for t in rows {
            let dst = dtable + Int(ids[t]) * cols, src = dy + t * cols
            var c = 0
            while c + 16 <= cols { storeVec(loadVec(dst + c) + loadVec(src + c), dst + c); c += 16 }
            while c < cols { dst[c] += src[c]; c += 1 }
        }
    }
}

extension BLAS {
    /// The backward of y[M, N] = x[M, K] · w[N, K]ᵀ + b: dx = dy · w (written, or added when
    /// `accumulateInput`), dw += dyᵀ · x, db += Σ_rows dy.
    public static func linearBackward(
        dy: UnsafePointer<Float>, x: UnsafePointer<Float>, w: UnsafePointer<Float>,
        m: Int, n: Int, k: Int,
        dx: UnsafeMutablePointer<Float>?, dw: UnsafeMutablePointer<Float>,
        db: UnsafeMutablePointer<Float>?, accumulateInput: Bool = false
    ) {
        if let dx {
            parallelSgemm(m: m, n: k, k: n, a: dy, lda: n, b: w, ldb: k, beta: accumulateInput ? 1 : 0, c: dx, ldc: k)
        }
        parallelSgemm(transA: true, m: n, n: k, k: m, a: dy, lda: n, b: x, ldb: k, beta: 1, c: dw, ldc: k)
        if let db { Kernels.biasBackward(dy: dy, db: db, cols: n, rows: 0..<m) }
    }
}

extension Kernels {
    /// Softmax cross-entropy of each row against its label, in place: returns Σ loss (in Double)
    /// and replaces each row's logits by the loss's gradient, (softmax − one-hot) · `scale`.
    /// The loss is log Σ exp(x − max) + max − x[label], stable for any logits.
    public static func crossEntropy(
        _ logits: UnsafeMutablePointer<Float>, labels: UnsafePointer<Int32>,
        cols: Int, rows: Range<Int>, scale: Float
    ) -> Double {
        var total = 0.0
        for r in rows {
            let x = logits + r * cols
            let label = Int(labels[r])
            let target = x[label]
            var mv = Vec16(repeating: -.infinity)
            var c = 0
            while c + 16 <= cols { let v = loadVec(x + c); mv = mv.replacing(with: v, where: v .> mv); c += 16 }
            var m = mv.max()
            while c < cols { m = max(m, x[c]); c += 1 }
            let mvec = Vec16(repeating: m)
            var acc = Vec16()
            c = 0
            while c + 16 <= cols { let e = vexp(loadVec(x + c) - mvec); storeVec(e, x + c); acc += e; c += 16 }
            var sum = Double(acc.sum())
            if c < cols {
                let e = vexp(loadPartial(x + c, cols - c, fill: -.infinity) - mvec)
                storePartial(e, x + c, cols - c)
                sum += Double(e.sum())
            }
            total += Foundation.log(sum) + Double(m) - Double(target)
            let k = Vec16(repeating: Float(Double(scale) / sum))
            c = 0
            while c + 16 <= cols { storeVec(loadVec(x + c) * k, x + c); c += 16 }
            while c < cols { x[c] *= k[0]; c += 1 }
            x[label] -= scale
        }
        return total
    }
}
