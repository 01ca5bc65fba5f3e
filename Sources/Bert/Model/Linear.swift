import BertCompute
import Foundation

/// torch.nn.Linear: y = x·Wᵀ + b, W stored [out, in]. Its forward is where the matrix kernel of
/// every product in the model is chosen (BLAS, or weights packed once for inference), so a new
/// precision is one more `MatrixKernel` case, not a new forward.
public struct Linear: Sendable {
    /// [out, in], as torch.nn.Linear.
    public let weight: TensorRef
    /// [out], added to every output row.
    public let bias: TensorRef
    /// Values per output row: the weight's first dimension.
    public var outFeatures: Int { weight.shape[0] }
    /// Values per input row: the weight's second dimension.
    public var inFeatures: Int { weight.shape[1] }

    init(_ layout: inout ParameterLayout, _ prefix: String, out: Int, in inFeatures: Int) {
        weight = layout.add(prefix + ".weight", [out, inFeatures])
        bias = layout.add(prefix + ".bias", [out])
    }

    init(weight: TensorRef, bias: TensorRef) {
        self.weight = weight
        self.bias = bias
    }

    /// output[rows, out] = input[rows, in]·Wᵀ + b, then `epilogue(rows)` on each finished block of
    /// rows (while it is in cache). `matrices` holds the inference kernels (nil: BLAS).
    func forward(
        _ input: UnsafePointer<Float>, rows m: Int, output: UnsafeMutablePointer<Float>,
        parameters p: ParameterStore, matrices: InferenceMatrices? = nil,
        epilogue: (Range<Int>) -> Void = { _ in }
    ) {
        let kernel = matrices?.kernel(for: self) ?? .blas
        switch kernel {
        case .int8(_, let fromFloats), .bf16(_, let fromFloats):
            // The low-precision copy is the weight. Its floats are read only when it was made from
            // them (int8's outlier columns); a quantized folder's never are.
            multiplyLowPrecision(
                input, rows: m, inFeatures: inFeatures, outFeatures: outFeatures,
                floatWeight: fromFloats ? p[weight] : nil,
                bias: p[bias], output: output, kernel: kernel, epilogue: epilogue)
        case .blas, .packed:
            multiply(
                input, rows: m, inFeatures: inFeatures, weight: p[weight], outFeatures: outFeatures, bias: p[bias],
                output: output, kernel: kernel, epilogue: epilogue)
        }
    }

    /// The backward of `forward`: dx = dy·W (written, or added when `accumulateInput`), and
    /// dW += dyᵀ·x, db += Σ dy into the gradient block.
    func backward(
        _ dy: UnsafePointer<Float>, input x: UnsafePointer<Float>, rows m: Int,
        inputGradient dx: UnsafeMutablePointer<Float>?, accumulateInput: Bool = false,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        BLAS.linearBackward(
            dy: dy, x: x, w: p[weight], m: m, n: outFeatures, k: inFeatures, dx: dx, dw: g[weight],
            db: g[bias], accumulateInput: accumulateInput)
    }
}

/// The number format of the encoder's matrix products at inference. LayerNorm, softmax, GELU,
/// the residuals and attention's own products stay in float whatever the precision.
public enum Precision: String, Sendable, CaseIterable {
    /// Float32 throughout (the default): transformers' results to within 1e-4.
    case fp32
    /// The weight matrices and each product's input rounded to bfloat16, products accumulated in
    /// float: copies half the matrices' size, about twice the product speed on AVX512_BF16.
    case bf16
    /// The weight matrices quantized to int8 per output row, each product's input per row on the
    /// fly, products in int32 (values past `BLAS.int8OutlierThreshold` in float): copies a quarter
    /// of the matrices' size, about three to four times the product speed on AVX512_VNNI.
    case int8
}

/// How one weight matrix is multiplied at inference.
enum MatrixKernel {
    /// OpenBLAS (or Accelerate) sgemm, which packs the weights on every call.
    case blas
    /// Weights packed once into our FMA micro-kernel's panels (`BLAS.packedGemmNT`).
    case packed(PackedWeights)
    /// Weights quantized to int8 once (`BLAS.int8Gemm`), from the block's floats or from the
    /// int8 values a quantized folder stored.
    case int8(Int8Weights, fromFloats: Bool)
    /// Weights rounded to bf16 once (`BLAS.bf16Gemm`), from floats or from stored bf16 values.
    case bf16(BF16Weights, fromFloats: Bool)
}

/// The inference kernels of a model's weight matrices, keyed by where each matrix lives in the
/// parameter block, with a sample of the values they were made from (to notice that the
/// parameters changed since, and make them again).
final class InferenceMatrices: @unchecked Sendable {
    private let kernels: [Int: MatrixKernel]
    /// (offset into the parameter block, value) at spread positions of every prepared matrix.
    private let samples: [(Int, Float)]

    /// The precision the matrices were made for.
    let precision: Precision
    /// Bytes of the copies made from floats (those made from held matrices are the store's).
    let copiedBytes: Int

    /// Makes the kernel of every matrix of `linears` that the kernels can take (outputs a
    /// multiple of 16): packed float (fp32), bf16 or int8 copies. A matrix held in the precision
    /// asked for (a quantized folder's) is packed from its stored values, and the copy becomes the
    /// only one; any other is read as floats.
    init(_ linears: [Linear], parameters p: ParameterStore, precision: Precision = .fp32) {
        var kernels: [Int: MatrixKernel] = [:]
        var samples: [(Int, Float)] = []
        var copiedBytes = 0
        // Raw: a held matrix's floats are not in the block (its samples read 0 until widened,
        // and widening it then counts as a change).
        let base = p.storage.pointer
        for linear in linears where PackedWeights.canPack(n: linear.outFeatures) {
            let offset = linear.weight.offset, count = linear.weight.count
            let (n, k) = (linear.outFeatures, linear.inFeatures)
            switch precision {
            case .fp32:
                kernels[offset] = .packed(PackedWeights(p[linear.weight], n: n, k: k))
                copiedBytes += 4 * n * k
            case .bf16:
                if let bits = p.heldBF16(linear.weight) {
                    let w = bits.withUnsafeBufferPointer { BF16Weights(bits: $0.baseAddress!, n: n, k: k) }
                    p.holdPacked(linear.weight) { .packedBF16(w, firstRow: $0) }
                    kernels[offset] = .bf16(w, fromFloats: false)
                } else {
                    let w = BF16Weights(p[linear.weight], n: n, k: k)
                    copiedBytes += w.byteCount
                    kernels[offset] = .bf16(w, fromFloats: true)
                }
            case .int8:
                if let (q, scales) = p.heldInt8(linear.weight) {
                    let w = Int8Weights(quantized: q, scales: scales, n: n, k: k)
                    p.holdPacked(linear.weight) { .packedInt8(w, firstRow: $0) }
                    kernels[offset] = .int8(w, fromFloats: false)
                } else {
                    let w = Int8Weights(p[linear.weight], n: n, k: k)
                    copiedBytes += w.byteCount
                    kernels[offset] = .int8(w, fromFloats: true)
                }
            }
            for s in 0..<64 { let o = offset + (s * 7919 + 13) % count; samples.append((o, base[o])) }
        }
        self.kernels = kernels
        self.samples = samples
        self.precision = precision
        self.copiedBytes = copiedBytes
    }

    func kernel(for linear: Linear) -> MatrixKernel? { kernels[linear.weight.offset] }

    /// Whether the sampled values are still what the kernels were made from.
    func matches(_ p: ParameterStore) -> Bool {
        let base = p.storage.pointer
        for (o, v) in samples where base[o].bitPattern != v.bitPattern { return false }
        return true
    }
}

/// How many row blocks to split `rows` rows into: one per thread, but not below ~8 rows each.
@inline(__always)
func rowParts(_ rows: Int, _ threads: Int) -> Int { max(1, min(threads, rows / 8)) }

/// out[M, N] = input[M, K] · weight[N, K]ᵀ + bias, then `epilogue(rows)` on the finished rows. The
/// bias is written first and the product accumulated onto it (BLAS with beta = 1 skips its own pass
/// over C). With many rows each thread multiplies its own row block and runs the epilogue on it
/// while it is in cache; with fewer, the threads split the weight's rows instead (BLAS packs the
/// weights on every call, and a row split would have every thread pack and stream all of them).
func multiply(
    _ input: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight: UnsafePointer<Float>,
    outFeatures n: Int, bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
    kernel: MatrixKernel = .blas, epilogue: (Range<Int>) -> Void
) {
    let threads = Compute.threads
    nonisolated(unsafe) let input = input, weight = weight, output = output, bias = bias
    if case .packed(let packed) = kernel, m > BLAS.smallRowLimit && m <= BLAS.packedRowLimit * threads {
        // Weights packed ahead of time (inference): rows split over the threads when there are
        // many, else the weights' panels. Past packedRowLimit rows a thread, BLAS's own packing
        // is amortised and its kernel is as fast as ours.
        precondition(
            packed.n == n && packed.k == k, "packed weights of \(packed.n)x\(packed.k) for a \(n)x\(k) product")
        let panels = n / PackedWeights.panelWidth
        if threads > 1 && m >= 256 * threads {
            Compute.parallelRanges(m, parts: threads, granularity: 6) { rows in
                BLAS.packedGemmNT(
                    a: input, lda: k, w: packed, bias: bias, c: output, ldc: n, rows: rows, panels: 0..<panels)
                epilogue(rows)
            }
        } else {
            Compute.parallelRanges(panels, parts: threads) { part in
                BLAS.packedGemmNT(a: input, lda: k, w: packed, bias: bias, c: output, ldc: n, rows: 0..<m, panels: part)
            }
            Compute.parallelRanges(m, parts: rowParts(m, threads)) { epilogue($0) }
        }
    } else if threads > 1 && m >= 256 * threads {
        Compute.parallelRanges(m, parts: threads, granularity: 8) { rows in
            Kernels.fillRows(output, with: bias, cols: n, rows: rows)
            BLAS.sgemm(
                transB: true, m: rows.count, n: n, k: k, a: input + rows.lowerBound * k, lda: k,
                b: weight, ldb: k, beta: 1, c: output + rows.lowerBound * n, ldc: n)
            epilogue(rows)
        }
    } else if m <= BLAS.smallRowLimit {
        // Few rows: stream each weight row once, columns split over the threads.
        Compute.parallelRanges(n, parts: threads, granularity: 4) { cols in
            BLAS.smallGemmNT(m: m, k: k, a: input, lda: k, b: weight, ldb: k, bias: bias, c: output, ldc: n, cols: cols)
        }
        epilogue(0..<m)  // a few rows: cheaper than waking the other threads again
    } else {
        Kernels.fillRows(output, with: bias, cols: n, rows: 0..<m)
        BLAS.parallelSgemm(
            transB: true, m: m, n: n, k: k, a: input, lda: k, b: weight, ldb: k, beta: 1, c: output, ldc: n)
        Compute.parallelRanges(m, parts: rowParts(m, threads)) { epilogue($0) }
    }
}

/// `multiply` with an int8 or bf16 kernel, which holds the weights itself.
func multiplyLowPrecision(
    _ input: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, outFeatures n: Int,
    floatWeight: UnsafePointer<Float>?, bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
    kernel: MatrixKernel, epilogue: (Range<Int>) -> Void
) {
    switch kernel {
    case .int8(let w, _):
        precondition(w.n == n && w.k == k, "int8 weights of \(w.n)x\(w.k) for a \(n)x\(k) product")
        BLAS.int8Gemm(a: input, lda: k, rows: m, w: w, floatWeight: floatWeight, bias: bias, c: output, ldc: n)
    case .bf16(let w, _):
        precondition(w.n == n && w.k == k, "bf16 weights of \(w.n)x\(w.k) for a \(n)x\(k) product")
        BLAS.bf16Gemm(a: input, lda: k, rows: m, w: w, bias: bias, c: output, ldc: n)
    case .blas, .packed: preconditionFailure("multiplyLowPrecision with a float kernel")
    }
    Compute.parallelRanges(m, parts: rowParts(m, Compute.threads)) { epilogue($0) }
}
