import CKernels
import Foundation

// Inference products in int8 and bf16 against weights quantized and packed once (the C kernels
// of CKernels, chosen at run time from what the CPU reports). The activations are quantized (or
// rounded to bf16) per call, one row at a time, just before the product.

/// The instructions the low-precision kernels use on this CPU.
public enum LowPrecisionSupport {
    /// AVX512_VNNI: the int8 kernel's `vpdpbusd`. Without it the int8 products run in portable C
    /// (the same results, several times slower).
    public static var hasInt8Instructions: Bool { bert_cpu_has_vnni() != 0 }
    /// AVX512_BF16: the bf16 kernel's `vdpbf16ps`. Without it the bf16 products run in portable C.
    public static var hasBF16Instructions: Bool { bert_cpu_has_bf16() != 0 }
}

/// A weight matrix W[n, k] (torch.nn.Linear's out × in) quantized to int8 symmetrically per
/// output row (scale = max |row| / 127) and packed for the int8 kernel: a quarter of the float
/// matrix's size.
public final class Int8Weights: @unchecked Sendable {
    /// Rows of W (output features), a multiple of 16.
    public let n: Int
    /// Columns of W (input features).
    public let k: Int
    /// Groups of 4 inputs (k rounded up to a multiple of 4, over 4).
    let k4: Int
    let packed: UnsafeMutablePointer<Int8>
    /// Each output row's scale: W[j, p] ≈ scales[j] · q[j, p].
    public let scales: [Float]
    /// Σ_p q[j, p]: times a row's zero point, what that offset adds to output j.
    let sums: [Int32]

    /// Quantizes and packs `w` (row-major n × k); `n` must pass `PackedWeights.canPack(n:)`.
    public convenience init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        let (q, scales) = Self.quantize(w, n: n, k: k)
        self.init(quantized: q, scales: scales, n: n, k: k)
    }

    /// W's rows quantized symmetrically (scale = max |row| / 127, 1 for a zero row; values
    /// rounded to nearest, ties to even): q[j, p] with W[j, p] ≈ scales[j] · q[j, p]. The values
    /// must be finite. Quantizing `scales[j] · q[j, p]` again gives q back.
    public static func quantize(_ w: UnsafePointer<Float>, n: Int, k: Int) -> (q: [Int8], scales: [Float]) {
        var scales = [Float](repeating: 1, count: n)
        var q = [Int8](repeating: 0, count: n * k)
        for j in 0..<n {
            let row = w + j * k
            var m: Float = 0
            for p in 0..<k { m = max(m, abs(row[p])) }
            let scale = m > 0 ? m / 127 : 1
            scales[j] = scale
            for p in 0..<k { q[j * k + p] = Int8(max(-127, min(127, (row[p] / scale).rounded(.toNearestOrEven)))) }
        }
        return (q, scales)
    }

    /// Packs weights already quantized: q[j, p] (row-major n × k) with W[j, p] ≈ scales[j] · q[j, p];
    /// `n` must pass `PackedWeights.canPack(n:)`.
    public init(quantized q: [Int8], scales: [Float], n: Int, k: Int) {
        precondition(PackedWeights.canPack(n: n) && k > 0 && q.count == n * k && scales.count == n)
        self.n = n
        self.k = k
        k4 = (k + 3) / 4
        let bytes = (n / 16) * k4 * 64
        let packed = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64).bindMemory(
            to: Int8.self, capacity: bytes)
        q.withUnsafeBufferPointer { bert_pack_s8($0.baseAddress!, Int64(n), Int64(k), packed) }
        self.packed = packed
        self.scales = scales
        sums = (0..<n).map { j in q[(j * k)..<(j * k + k)].reduce(Int32(0)) { $0 + Int32($1) } }
    }

    deinit { packed.deallocate() }

    /// q[j, p] from the packed panels (16 rows by groups of 4 inputs).
    @inline(__always)
    func value(row j: Int, column p: Int) -> Int8 { packed[((j >> 4) * k4 + (p >> 2)) * 64 + 4 * (j & 15) + (p & 3)] }

    /// Rows `rows` of the dequantized W (scales[j] · q[j, p]) into `out`, row-major, k floats a row.
    public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for (i, j) in rows.enumerated() {
            let s = scales[j]
            for p in 0..<k { out[i * k + p] = Float(value(row: j, column: p)) * s }
        }
    }

    /// Columns of W already gathered for the outlier products (BERT's outlier features are the
    /// same few columns input after input), each n floats.
    private var columns: [Int: [Float]] = [:]
    private let columnsLock = NSLock()

    /// Copies column `p` of W into `out` (n floats), gathering it once: from `floatWeight` (the
    /// row-major n × k matrix these weights were made from) when given, else dequantized
    /// (scales[j] · q[j, p]). One Int8Weights is used with one or the other, never both.
    func copyColumn(_ p: Int, of floatWeight: UnsafePointer<Float>?, into out: UnsafeMutablePointer<Float>) {
        columnsLock.lock()
        defer { columnsLock.unlock() }
        if columns[p] == nil {
            columns[p] = (0..<n).map { j in
                floatWeight.map { $0[j * k + p] } ?? Float(value(row: j, column: p)) * scales[j]
            }
        }
        columns[p]!.withUnsafeBufferPointer { out.update(from: $0.baseAddress!, count: n) }
    }

    /// Bytes these weights hold: the packed matrix, the scales and the row sums.
    public var byteCount: Int { (n / 16) * k4 * 64 + 8 * n }
}

/// A weight matrix W[n, k] rounded to bfloat16 (nearest, ties to even) and packed for the bf16
/// kernel: half the float matrix's size.
public final class BF16Weights: @unchecked Sendable {
    /// Rows of W (output features), a multiple of 16.
    public let n: Int
    /// Columns of W (input features).
    public let k: Int
    /// Pairs of inputs (k rounded up to even, over 2).
    let k2: Int
    let packed: UnsafeMutablePointer<UInt16>

    /// Rounds and packs `w` (row-major n × k); `n` must pass `PackedWeights.canPack(n:)`.
    public convenience init(_ w: UnsafePointer<Float>, n: Int, k: Int) {
        self.init(n: n, k: k) { bert_pack_bf16(w, Int64(n), Int64(k), $0) }
    }

    /// Packs a matrix already in bf16 (row-major n × k bit patterns, as a BF16 safetensors
    /// tensor holds them), in the panels `bert_pack_bf16` writes; `n` must pass
    /// `PackedWeights.canPack(n:)`.
    public convenience init(bits: UnsafePointer<UInt16>, n: Int, k: Int) {
        let k2 = (k + 1) / 2
        self.init(n: n, k: k) { packed in
            for q in 0..<(n / 16) {
                for g in 0..<k2 {
                    for c in 0..<16 {
                        for e in 0..<2 {
                            let p = 2 * g + e
                            packed[(q * k2 + g) * 32 + 2 * c + e] = p < k ? bits[(16 * q + c) * k + p] : 0
                        }
                    }
                }
            }
        }
    }

    /// Allocates the panels (16 rows by pairs of inputs) and lets `pack` fill them.
    private init(n: Int, k: Int, pack: (UnsafeMutablePointer<UInt16>) -> Void) {
        precondition(PackedWeights.canPack(n: n) && k > 0)
        self.n = n
        self.k = k
        k2 = (k + 1) / 2
        let count = (n / 16) * k2 * 32
        let packed = UnsafeMutableRawPointer.allocate(byteCount: count * 2, alignment: 64).bindMemory(
            to: UInt16.self, capacity: count)
        pack(packed)
        self.packed = packed
    }

    deinit { packed.deallocate() }

    /// Rows `rows` of W (the bf16 values, widened exactly) into `out`, row-major, k floats a row.
    public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) {
        for (i, j) in rows.enumerated() {
            for p in 0..<k {
                let bits = packed[((j >> 4) * k2 + (p >> 1)) * 32 + 2 * (j & 15) + (p & 1)]
                out[i * k + p] = Float(bitPattern: UInt32(bits) << 16)
            }
        }
    }

    /// Bytes of the packed matrix.
    public var byteCount: Int { (n / 16) * k2 * 64 }
}

extension BLAS {
    /// Inputs of a product past this magnitude are multiplied in float, the rest in int8 (as
    /// LLM.int8()'s decomposition, but element by element, so a row's result never depends on the
    /// other rows of its batch): BERT's hidden states have a few such feature columns (up to 30
    /// here), and quantizing them with the rest costs every other value of the row its precision.
    /// Measured on all-MiniLM-L6-v2 (30 real sentences, cosine of the embeddings to float):
    /// per-row symmetric int8 min 0.986; asymmetric 0.992; asymmetric with values past 6 in float
    /// 0.997 (3 and 8: about the same).
    public static let int8OutlierThreshold: Float = 6

    /// C[m, n] = bias + A[m, k] · Wᵀ with W in int8: A's rows are quantized (asymmetric, per row)
    /// then multiplied by `vpdpbusd` where the CPU has it (`portable`: the C versions, whatever
    /// the CPU, for tests). Elements of A past `outlierThreshold` in magnitude (and NaN, so that
    /// it reaches the output) are left out of the int8 product and multiplied in float against
    /// W's columns: those of `floatWeight` (the row-major n × k matrix `w` was made from) when
    /// given, else `w`'s dequantized ones (a model stored in int8 has no others); either is kept
    /// once used. Rows or panels are split over the threads.
    public static func int8Gemm(
        a: UnsafePointer<Float>, lda: Int, rows m: Int, w: Int8Weights, floatWeight: UnsafePointer<Float>?,
        bias: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>, ldc: Int,
        outlierThreshold: Float = int8OutlierThreshold, portable: Bool = false
    ) {
        guard m > 0 else { return }
        let ldq = 4 * w.k4, k = w.k, n = w.n
        let quantized = UnsafeMutablePointer<UInt8>.allocate(capacity: m * ldq)
        let rowScales = UnsafeMutablePointer<Float>.allocate(capacity: m)
        let rowZeros = UnsafeMutablePointer<Int32>.allocate(capacity: m)
        defer {
            quantized.deallocate()
            rowScales.deallocate()
            rowZeros.deallocate()
        }
        nonisolated(unsafe) let a = a, q = quantized, scales = rowScales, zeros = rowZeros, c = c, bias = bias
        let threads = Compute.threads
        let limit = outlierThreshold
        // Each part of the rows marks the columns of its left-out elements in its own k bytes.
        let parts = max(1, min(threads, m / 16))
        var marks = [UInt8](repeating: 0, count: parts * k)
        marks.withUnsafeMutableBufferPointer { buffer in
            nonisolated(unsafe) let marks = buffer.baseAddress!
            Compute.parallelFor(parts) { part in
                let r0 = m * part / parts, r1 = m * (part + 1) / parts
                guard r0 < r1 else { return }
                let quantize = portable ? bert_quantize_rows_u8_portable : bert_quantize_rows_u8
                quantize(
                    a, Int64(lda), Int64(k), Int64(r0), Int64(r1), limit, q, Int64(ldq), scales, zeros,
                    marks + part * k)
            }
        }
        let panels = n / 16
        w.scales.withUnsafeBufferPointer { ws in
            w.sums.withUnsafeBufferPointer { sums in
                nonisolated(unsafe) let ws = ws.baseAddress!, sums = sums.baseAddress!
                splitOverThreads(rows: m, panels: panels) { rows, part in
                    let f = portable ? bert_gemm_u8s8_portable : bert_gemm_u8s8
                    f(
                        q, Int64(ldq), scales, zeros, w.packed, Int64(w.k4), ws, sums, bias, c, Int64(ldc),
                        Int64(rows.lowerBound), Int64(rows.upperBound), Int64(part.lowerBound), Int64(part.upperBound))
                }
            }
        }
        // The left-out elements, in float: the columns holding any, gathered (A's values past the
        // limit, 0 elsewhere; W's columns as rows), each row adding its own.
        // (Plain loops over the marks: this runs for every product, and one short sentence's
        // whole int8 product takes only tens of microseconds.)
        var columns: [Int] = []
        marks.withUnsafeBufferPointer { marked in
            for p in 0..<k {
                var any = false
                for part in 0..<parts where marked[part * k + p] != 0 { any = true }
                if any { columns.append(p) }
            }
        }
        guard !columns.isEmpty else { return }
        let o = columns.count
        var ao = [Float](repeating: 0, count: m * o), wt = [Float](repeating: 0, count: o * n)
        for i in 0..<m {
            for (t, p) in columns.enumerated() where !(abs(a[i * lda + p]) <= limit) { ao[i * o + t] = a[i * lda + p] }
        }
        wt.withUnsafeMutableBufferPointer { out in
            for (t, p) in columns.enumerated() { w.copyColumn(p, of: floatWeight, into: out.baseAddress! + t * n) }
        }
        ao.withUnsafeBufferPointer { ap in
            wt.withUnsafeBufferPointer { wp in
                nonisolated(unsafe) let ap = ap.baseAddress!, wp = wp.baseAddress!
                // Split over the threads only with many rows: each row adds a few vectors.
                Compute.parallelRanges(m, parts: m >= 256 ? threads : 1) { rows in
                    bert_add_outliers(
                        ap, Int64(o), wp, Int64(n), c, Int64(ldc), Int64(rows.lowerBound), Int64(rows.upperBound))
                }
            }
        }
    }

    /// C[m, n] = bias + A[m, k] · Wᵀ with W and A's rows rounded to bf16 and the products
    /// accumulated in float, by `vdpbf16ps` where the CPU has it (`portable`: the C versions).
    public static func bf16Gemm(
        a: UnsafePointer<Float>, lda: Int, rows m: Int, w: BF16Weights, bias: UnsafePointer<Float>,
        c: UnsafeMutablePointer<Float>, ldc: Int, portable: Bool = false
    ) {
        guard m > 0 else { return }
        let ldb = 2 * w.k2, k = w.k
        let rounded = UnsafeMutablePointer<UInt16>.allocate(capacity: m * ldb)
        defer { rounded.deallocate() }
        nonisolated(unsafe) let a = a, b = rounded, c = c, bias = bias
        let threads = Compute.threads
        Compute.parallelRanges(m, parts: max(1, min(threads, m / 16))) { rows in
            let convert = portable ? bert_convert_rows_bf16_portable : bert_convert_rows_bf16
            convert(a, Int64(lda), Int64(k), Int64(rows.lowerBound), Int64(rows.upperBound), b, Int64(ldb))
        }
        splitOverThreads(rows: m, panels: w.n / 16) { rows, part in
            let f = portable ? bert_gemm_bf16_portable : bert_gemm_bf16
            f(
                b, Int64(ldb), w.packed, Int64(w.k2), bias, c, Int64(ldc), Int64(rows.lowerBound),
                Int64(rows.upperBound), Int64(part.lowerBound), Int64(part.upperBound))
        }
    }

    /// Runs a low-precision product's parts on the threads: with many rows each thread takes its
    /// rows against all the panels (the weights, from L2); with few, its share of the panels.
    static func splitOverThreads(rows m: Int, panels: Int, _ run: (Range<Int>, Range<Int>) -> Void) {
        let threads = Compute.threads
        if threads > 1 && m >= 96 * threads {
            Compute.parallelRanges(m, parts: threads, granularity: 6) { run($0, 0..<panels) }
        } else {
            Compute.parallelRanges(panels, parts: threads) { run(0..<m, $0) }
        }
    }
}
