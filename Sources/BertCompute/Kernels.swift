import CKernels
// Row-wise kernels on contiguous row-major Float matrices. Each works on a range of rows so the
// caller can split rows over threads; none allocates.

/// Activation of the feed-forward block, as named by Hugging Face's `hidden_act`.
public enum Activation: String, Sendable, CaseIterable {
    /// GELU, exact form with erf (`hidden_act` "gelu").
    case gelu  // exact erf form
    /// GELU, tanh approximation (`hidden_act` "gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    case geluTanh  // tanh approximation
    /// max(0, x).
    case relu

    /// Parses a `hidden_act` value; nil when unsupported.
    public init?(huggingFaceName name: String) {
        switch name {
        case "gelu": self = .gelu
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": self = .geluTanh
        case "relu": self = .relu
        default: return nil
        }
    }

    /// The `hidden_act` name written back to a config ("gelu_new" for ``geluTanh``).
    public var huggingFaceName: String {
        switch self {
        case .gelu: return "gelu"
        case .geluTanh: return "gelu_new"
        case .relu: return "relu"
        }
    }
}

/// Row-wise kernels on contiguous row-major Float matrices: LayerNorm, softmax, activations, embedding
/// sums and their backwards. Each works on a range of rows so the caller can split rows over threads.
public enum Kernels {
    /// y[r, :] = tanh(x[r, :] + bias); `y` may equal `x`.
    public static func biasTanh(
        _ x: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>
    ) {
        for r in rows {
            let xr = x + r * cols, yr = y + r * cols
            var c = 0
            while c + 16 <= cols { storeVec(vtanh(loadVec(xr + c) + loadVec(bias + c)), yr + c); c += 16 }
            if c < cols {
                storePartial(vtanh(loadPartial(xr + c, cols - c) + loadPartial(bias + c, cols - c)), yr + c, cols - c)
            }
        }
    }

    /// LayerNorm of each row: y = (x − mean)/√(var + eps)·gamma + beta (biased variance, as torch).
    /// `y` may equal `x`. When given, the row's mean and 1/√(var+eps) are stored for a backward pass.
    /// `native`: CKernels' AVX-512 version where the CPU has it (see `BLAS.nativeFloatKernels`).
    public static func layerNorm(
        _ x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
        cols: Int, rows: Range<Int>,
        mean meanOut: UnsafeMutablePointer<Float>? = nil,
        rstd rstdOut: UnsafeMutablePointer<Float>? = nil, native: Bool = BLAS.nativeFloatKernels
    ) {
        if native && BLAS.nativeFloatKernels && cols > 0 {
            for r in rows {
                bert_layer_norm(
                    x + r * cols, y + r * cols, gamma, beta, eps, Int64(cols), meanOut.map { $0 + r },
                    rstdOut.map { $0 + r })
            }
            return
        }
        let n = Float(cols)
        for r in rows {
            let xr = x + r * cols, yr = y + r * cols
            var acc = Vec16()
            var c = 0
            while c + 16 <= cols { acc += loadVec(xr + c); c += 16 }
            var sum = acc.sum()
            while c < cols { sum += xr[c]; c += 1 }
            let mean = sum / n
            let m = Vec16(repeating: mean)
            var acc2 = Vec16()
            c = 0
            while c + 16 <= cols { let d = loadVec(xr + c) - m; acc2 += d * d; c += 16 }
            var ss = acc2.sum()
            while c < cols { let d = xr[c] - mean; ss += d * d; c += 1 }
            let rstd = 1 / (ss / n + eps).squareRoot()
            let s = Vec16(repeating: rstd)
            c = 0
            while c + 16 <= cols {
                storeVec((loadVec(xr + c) - m) * s * loadVec(gamma + c) + loadVec(beta + c), yr + c)
                c += 16
            }
            while c < cols { yr[c] = (xr[c] - mean) * rstd * gamma[c] + beta[c]; c += 1 }
            meanOut?[r] = mean
            rstdOut?[r] = rstd
        }
    }

    /// In-place softmax of each row of length `cols` with row stride `ld`. `native`: the
    /// exponentials in CKernels' AVX-512 version where the CPU has it.
    public static func softmax(
        _ x: UnsafeMutablePointer<Float>, cols: Int, ld: Int, rows: Range<Int>, native: Bool = BLAS.nativeFloatKernels
    ) {
        for r in rows {
            let xr = x + r * ld
            scale(xr, count: cols, by: expShifted(xr, count: cols, native: native))
        }
    }

    /// x[j] *= factor for j < count.
    @inline(__always)
    static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        let f = Vec16(repeating: factor)
        var c = 0
        while c + 16 <= count { storeVec(loadVec(x + c) * f, x + c); c += 16 }
        while c < count { x[c] *= factor; c += 1 }
    }

    /// x[j] = e^(x[j] − max x) for j < count; returns 1 / Σ_j x[j].
    @inline(__always)
    static func expShifted(
        _ x: UnsafeMutablePointer<Float>, count: Int, native: Bool = BLAS.nativeFloatKernels
    ) -> Float {
        if native && BLAS.nativeFloatKernels && count > 0 { return bert_exp_shifted(x, Int64(count)) }
        var c = 0
        var mv = Vec16(repeating: -.infinity)
        while c + 16 <= count { mv = pointwiseMaxFast(mv, loadVec(x + c)); c += 16 }
        var mx = mv.max()
        while c < count { mx = max(mx, x[c]); c += 1 }
        let m = Vec16(repeating: mx)
        var acc = Vec16()
        c = 0
        while c + 16 <= count { let e = vexp(loadVec(x + c) - m); storeVec(e, x + c); acc += e; c += 16 }
        var sum = acc.sum()
        if c < count {
            let e = vexp(loadPartial(x + c, count - c, fill: -.infinity) - m)
            storePartial(e, x + c, count - c)
            sum += e.sum()
        }
        return 1 / sum
    }

    @inline(__always)
    static func pointwiseMaxFast(_ a: Vec16, _ b: Vec16) -> Vec16 {
        a.replacing(with: b, where: b .> a)
    }
}

extension Kernels {
    /// x[t, :] = a[ia[t], :] + b[ib[t], :] + c[ic[t], :]: the sum of three embedding rows per token.
    public static func gatherSum3(
        _ x: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>,
        a: UnsafePointer<Float>, ia: UnsafePointer<Int32>,
        b: UnsafePointer<Float>, ib: UnsafePointer<Int32>,
        c: UnsafePointer<Float>, ic: UnsafePointer<Int32>
    ) {
        for t in rows {
            let xr = x + t * cols
            let ar = a + Int(ia[t]) * cols, br = b + Int(ib[t]) * cols, cr = c + Int(ic[t]) * cols
            var j = 0
            while j + 16 <= cols { storeVec(loadVec(ar + j) + loadVec(br + j) + loadVec(cr + j), xr + j); j += 16 }
            while j < cols { xr[j] = ar[j] + br[j] + cr[j]; j += 1 }
        }
    }

    /// `gatherSum3` with the first table in int8, a scale per row (value = q · scale): the same
    /// sums as from its widened floats.
    public static func gatherSum3(
        _ x: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>,
        int8 a: UnsafePointer<Int8>, scales: UnsafePointer<Float>, ia: UnsafePointer<Int32>,
        b: UnsafePointer<Float>, ib: UnsafePointer<Int32>,
        c: UnsafePointer<Float>, ic: UnsafePointer<Int32>
    ) {
        for t in rows {
            let xr = x + t * cols
            let ar = a + Int(ia[t]) * cols, br = b + Int(ib[t]) * cols, cr = c + Int(ic[t]) * cols
            let s = scales[Int(ia[t])]
            for j in 0..<cols { xr[j] = Float(ar[j]) * s + br[j] + cr[j] }
        }
    }

    /// `gatherSum3` with the first table in bf16 bit patterns (widened exactly).
    public static func gatherSum3(
        _ x: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>,
        bf16 a: UnsafePointer<UInt16>, ia: UnsafePointer<Int32>,
        b: UnsafePointer<Float>, ib: UnsafePointer<Int32>,
        c: UnsafePointer<Float>, ic: UnsafePointer<Int32>
    ) {
        for t in rows {
            let xr = x + t * cols
            let ar = a + Int(ia[t]) * cols, br = b + Int(ib[t]) * cols, cr = c + Int(ic[t]) * cols
            for j in 0..<cols { xr[j] = Float(bitPattern: UInt32(ar[j]) << 16) + br[j] + cr[j] }
        }
    }
}

extension Kernels {
    /// y[r, :] = act(x[r, :]) (the bias already added, e.g. by `fillRows` before a product); `y` may equal `x`.
    /// `native`: GELU in CKernels' AVX-512 version where the CPU has it.
    public static func activation(
        _ x: UnsafePointer<Float>, output y: UnsafeMutablePointer<Float>, cols: Int,
        rows: Range<Int>, activation: Activation, native: Bool = BLAS.nativeFloatKernels
    ) {
        let lo = rows.lowerBound * cols, hi = rows.upperBound * cols
        var i = lo
        switch activation {
        case .gelu where native && BLAS.nativeFloatKernels:
            bert_gelu_erf(x + lo, y + lo, Int64(hi - lo))
        case .gelu:
            while i + 16 <= hi { storeVec(vgeluErf(loadVec(x + i)), y + i); i += 16 }
            if i < hi { storePartial(vgeluErf(loadPartial(x + i, hi - i)), y + i, hi - i) }
        case .geluTanh:
            while i + 16 <= hi { storeVec(vgeluTanh(loadVec(x + i)), y + i); i += 16 }
            if i < hi { storePartial(vgeluTanh(loadPartial(x + i, hi - i)), y + i, hi - i) }
        case .relu:
            while i < hi { y[i] = max(0, x[i]); i += 1 }
        }
    }

    /// z = x + residual (stored back into `x`), then y = LayerNorm(z); `y` may equal `residual`.
    public static func residualLayerNorm(
        _ x: UnsafeMutablePointer<Float>, residual: UnsafePointer<Float>,
        output y: UnsafeMutablePointer<Float>,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float,
        cols: Int, rows: Range<Int>,
        mean: UnsafeMutablePointer<Float>? = nil,
        rstd: UnsafeMutablePointer<Float>? = nil
    ) {
        for r in rows {
            let xr = x + r * cols, rr = residual + r * cols
            var c = 0
            while c + 16 <= cols { storeVec(loadVec(xr + c) + loadVec(rr + c), xr + c); c += 16 }
            while c < cols { xr[c] += rr[c]; c += 1 }
            layerNorm(
                x, output: y, gamma: gamma, beta: beta, eps: eps, cols: cols, rows: r..<(r + 1),
                mean: mean, rstd: rstd)
        }
    }

    /// The index of the first largest of `count` values (0 when count is 0).
    public static func argmax(_ x: UnsafePointer<Float>, count: Int) -> Int {
        var best = 0
        for j in 1..<max(count, 1) where x[j] > x[best] { best = j }
        return best
    }

    /// Copies `row` into every row of x (e.g. a bias, so that a product can accumulate onto it).
    public static func fillRows(
        _ x: UnsafeMutablePointer<Float>, with row: UnsafePointer<Float>, cols: Int, rows: Range<Int>
    ) {
        for r in rows { (x + r * cols).update(from: row, count: cols) }
    }
}
