import CKernels

// Matrix products against weights packed once, ahead of time. BLAS packs both operands on every
// call; for inference the weights never change, so they are laid out once in the order the
// micro-kernel reads them (panels of 16 output columns, each k×16, contiguous), and only the
// activations are read in place. The micro-kernel keeps a 6×16 block of C in 12 AVX registers
// (the register tiling of the usual Haswell kernels); six rows of A stay in L1 while they meet a
// group of weight panels held in L2.

/// A weight matrix W[n, k] (row-major, out × in: torch.nn.Linear's layout) as panels of 16 rows of
/// W: panel q holds W[16q + c][p] at q·16k + 16p + c. `n` must be a multiple of 16.
public final class PackedWeights: @unchecked Sendable {
    /// Rows of W (output features), a multiple of ``panelWidth``.
    public let n: Int
    /// Columns of W (input features).
    public let k: Int
    let data: UnsafeMutablePointer<Float>

    /// Rows of W per panel: the micro-kernel's 16 output columns.
    public static let panelWidth = 16

    /// Whether a matrix with `n` rows can be packed: `n` a positive multiple of ``panelWidth``.
    public static func canPack(n: Int) -> Bool { n > 0 && n % panelWidth == 0 }

    /// Packs a copy of `w`, row-major n×k; `n` must be a positive multiple of 16 and `k` positive.
    public init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        precondition(Self.canPack(n: n) && k > 0, "PackedWeights needs n a multiple of 16 (got \(n)) and k > 0")
        self.n = n
        self.k = k
        let raw = UnsafeMutableRawPointer.allocate(byteCount: n * k * MemoryLayout<Float>.stride, alignment: 64)
        data = raw.bindMemory(to: Float.self, capacity: n * k)
        for q in 0..<(n / 16) {
            let panel = data + q * 16 * k
            for c in 0..<16 {
                let row = w + (16 * q + c) * k
                for p in 0..<k { panel[16 * p + c] = row[p] }
            }
        }
    }

    deinit { data.deallocate() }
}

extension BLAS {
    /// Whether the FP32 kernels run in CKernels' AVX-512 versions, chosen at run time from what
    /// the CPU reports, whatever the build's target: the packed and small-row products, the fused
    /// attention's tiles, GELU, softmax's exponentials and LayerNorm.
    public static let nativeFloatKernels = bert_f32_fast() != 0

    /// Whether the packed kernel is worth using: CKernels' AVX-512 one runs on this CPU, or this
    /// build's Swift one has FMA (see `madd`). Otherwise its vectors are baseline SSE, while BLAS
    /// picks AVX2 kernels at run time.
    #if BERT_FMA
        /// Built with FMA (`-DBERT_FMA`).
        public static let packedGemmIsFast = true
    #else
        /// Built without FMA: fast when the CPU runs CKernels' kernels.
        public static let packedGemmIsFast = nativeFloatKernels
    #endif

    /// Rows per thread up to which the packed product beats BLAS (which packs the weights on
    /// every call: with more rows that cost is spread thin). Measured with `EncoderBench --gemm`:
    /// about 1.0–1.06x BLAS at 512 rows, 0.93–0.99x at 2048.
    public static let packedRowLimit = 512

    /// Rows of k per pass: six rows of A (6·kc floats) stay in L1 while they meet a group of panels.
    static let packedKBlock = 256
    /// Rows of A per pass, at most (their kc block, up to 480·256 floats, stays in L2 across the
    /// panel groups; fewer passes stream the weights from L3 fewer times).
    static let packedMBlock = 480
    /// Panels per group: 8·16·kc floats of weights (128 KB) stay in L2 while every row block of
    /// the pass meets them.
    static let packedPanelGroup = 8

    /// C[i, j] = bias[j] + Σ_p A[i, p]·W[j, p] for i in `rows` and j in columns 16·`panels`
    /// (A is m×k row-major with leading dimension lda). Overwrites C. `native`: CKernels' AVX-512
    /// kernel (only where the CPU has it), else the Swift one (tests run both).
    public static func packedGemmNT(
        a: UnsafePointer<Float>, lda: Int, w: PackedWeights,
        bias: UnsafePointer<Float>?, c: UnsafeMutablePointer<Float>, ldc: Int,
        rows: Range<Int>, panels: Range<Int>, native: Bool = nativeFloatKernels
    ) {
        let k = w.k
        if native && nativeFloatKernels {
            bert_gemm_f32_packed(
                a, Int64(lda), w.data, Int64(k), bias, c, Int64(ldc), Int64(rows.lowerBound), Int64(rows.upperBound),
                Int64(panels.lowerBound), Int64(panels.upperBound))
            return
        }
        // Equal passes of at most packedMBlock rows, whole 6-row tiles where possible.
        let passes = (rows.count + packedMBlock - 1) / packedMBlock
        let mc = ((rows.count + passes - 1) / passes + 5) / 6 * 6
        var pc = 0
        while pc < k {
            // Equal blocks of at most packedKBlock.
            let blocks = (k - pc + packedKBlock - 1) / packedKBlock
            let kc = (k - pc + blocks - 1) / blocks
            let first = pc == 0
            var ic = rows.lowerBound
            while ic < rows.upperBound {
                let end = min(ic + mc, rows.upperBound)
                var qc = panels.lowerBound
                while qc < panels.upperBound {
                    let group = qc..<min(qc + packedPanelGroup, panels.upperBound)
                    var i = ic
                    while i + 6 <= end {
                        for q in group {
                            let col = 16 * q
                            kernel6x16(
                                kc: kc, a: a + i * lda + pc, lda: lda, b: w.data + q * 16 * k + 16 * pc,
                                c: c + i * ldc + col, ldc: ldc, bias: first ? bias.map { $0 + col } : nil,
                                accumulate: !first)
                        }
                        i += 6
                    }
                    while i < end {
                        for q in group {
                            let col = 16 * q
                            kernel1x16(
                                kc: kc, a: a + i * lda + pc, b: w.data + q * 16 * k + 16 * pc,
                                c: c + i * ldc + col, bias: first ? bias.map { $0 + col } : nil, accumulate: !first)
                        }
                        i += 1
                    }
                    qc = group.upperBound
                }
                ic = end
            }
            pc += kc
        }
    }

    /// The starting value of a row's two accumulators: C (accumulate), the bias, or zero.
    @inline(__always)
    static func start(_ c: UnsafeMutablePointer<Float>, _ bias: UnsafePointer<Float>?, _ accumulate: Bool) -> (
        Vec8, Vec8
    ) {
        if accumulate { return (load8(c), load8(c + 8)) }
        if let bias { return (load8(bias), load8(bias + 8)) }
        return (Vec8(), Vec8())
    }

    @inline(__always)
    static func kernel6x16(
        kc: Int, a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, bias: UnsafePointer<Float>?, accumulate: Bool
    ) {
        let c0 = c, c1 = c0 + ldc, c2 = c1 + ldc, c3 = c2 + ldc, c4 = c3 + ldc, c5 = c4 + ldc
        var (s00, s01) = start(c0, bias, accumulate)
        var (s10, s11) = start(c1, bias, accumulate)
        var (s20, s21) = start(c2, bias, accumulate)
        var (s30, s31) = start(c3, bias, accumulate)
        var (s40, s41) = start(c4, bias, accumulate)
        var (s50, s51) = start(c5, bias, accumulate)
        let a0 = a, a1 = a0 + lda, a2 = a1 + lda, a3 = a2 + lda, a4 = a3 + lda, a5 = a4 + lda
        var bp = b
        for p in 0..<kc {
            let w0 = load8(bp), w1 = load8(bp + 8)
            var x = Vec8(repeating: a0[p])
            s00 = madd(s00, x, w0); s01 = madd(s01, x, w1)
            x = Vec8(repeating: a1[p])
            s10 = madd(s10, x, w0); s11 = madd(s11, x, w1)
            x = Vec8(repeating: a2[p])
            s20 = madd(s20, x, w0); s21 = madd(s21, x, w1)
            x = Vec8(repeating: a3[p])
            s30 = madd(s30, x, w0); s31 = madd(s31, x, w1)
            x = Vec8(repeating: a4[p])
            s40 = madd(s40, x, w0); s41 = madd(s41, x, w1)
            x = Vec8(repeating: a5[p])
            s50 = madd(s50, x, w0); s51 = madd(s51, x, w1)
            bp += 16
        }
        store8(s00, c0); store8(s01, c0 + 8)
        store8(s10, c1); store8(s11, c1 + 8)
        store8(s20, c2); store8(s21, c2 + 8)
        store8(s30, c3); store8(s31, c3 + 8)
        store8(s40, c4); store8(s41, c4 + 8)
        store8(s50, c5); store8(s51, c5 + 8)
    }

    @inline(__always)
    static func kernel1x16(
        kc: Int, a: UnsafePointer<Float>, b: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, bias: UnsafePointer<Float>?, accumulate: Bool
    ) {
        var (s0, s1) = start(c, bias, accumulate)
        var bp = b
        for p in 0..<kc {
            let x = Vec8(repeating: a[p])
            s0 = madd(s0, x, load8(bp)); s1 = madd(s1, x, load8(bp + 8))
            bp += 16
        }
        store8(s0, c); store8(s1, c + 8)
    }
}
