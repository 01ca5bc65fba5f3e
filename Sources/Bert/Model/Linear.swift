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
        multiply(
            input, rows: m, inFeatures: inFeatures, weight: p[weight], outFeatures: outFeatures, bias: p[bias],
            output: output, kernel: kernel, epilogue: epilogue)
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

/// How one weight matrix is multiplied at inference.
enum MatrixKernel {
    /// OpenBLAS (or Accelerate) sgemm, which packs the weights on every call.
    case blas
    /// Weights packed once into our FMA micro-kernel's panels (`BLAS.packedGemmNT`).
    case packed(PackedWeights)
}

/// The inference kernels of a model's weight matrices, keyed by where each matrix lives in the
/// parameter block, with a sample of the values they were made from (to notice that the
/// parameters changed since, and make them again).
final class InferenceMatrices: @unchecked Sendable {
    private let kernels: [Int: MatrixKernel]
    /// (offset into the parameter block, value) at spread positions of every prepared matrix.
    private let samples: [(Int, Float)]

    /// Packs every matrix of `linears` the packed kernel can take (outputs a multiple of 16).
    init(_ linears: [Linear], parameters p: ParameterStore) {
        var kernels: [Int: MatrixKernel] = [:]
        var samples: [(Int, Float)] = []
        let base = p.data.pointer
        for linear in linears where PackedWeights.canPack(n: linear.outFeatures) {
            let offset = linear.weight.offset, count = linear.weight.count
            for s in 0..<64 { let o = offset + (s * 7919 + 13) % count; samples.append((o, base[o])) }
            kernels[offset] = .packed(PackedWeights(base + offset, n: linear.outFeatures, k: linear.inFeatures))
        }
        self.kernels = kernels
        self.samples = samples
    }

    func kernel(for linear: Linear) -> MatrixKernel? { kernels[linear.weight.offset] }

    /// Whether the sampled values are still what the kernels were made from.
    func matches(_ p: ParameterStore) -> Bool {
        let base = p.data.pointer
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
