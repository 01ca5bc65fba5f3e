import BertCompute
import Foundation

/// transformers' BertSelfAttention: Q, K, V projections and scaled dot-product attention per head.
public struct BertSelfAttention: Sendable {
    /// The query projection, [H, H] ("query").
    public let query: Linear
    /// The key projection, [H, H] ("key").
    public let key: Linear
    /// The value projection, [H, H] ("value").
    public let value: Linear
    /// query, key and value weights are adjacent in the block, and so are their biases: together
    /// one [3H, H] Linear, so the three projections are a single matrix product.
    let qkv: Linear
    let heads: Int

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        let h = c.hiddenSize
        let qw = layout.add(prefix + ".query.weight", [h, h])
        let kw = layout.add(prefix + ".key.weight", [h, h])
        let vw = layout.add(prefix + ".value.weight", [h, h])
        let qb = layout.add(prefix + ".query.bias", [h])
        let kb = layout.add(prefix + ".key.bias", [h])
        let vb = layout.add(prefix + ".value.bias", [h])
        query = Linear(weight: qw, bias: qb)
        key = Linear(weight: kw, bias: kb)
        value = Linear(weight: vw, bias: vb)
        qkv = Linear(
            weight: TensorRef(name: prefix + ".{query,key,value}.weight", shape: [3 * h, h], offset: qw.offset),
            bias: TensorRef(name: prefix + ".{query,key,value}.bias", shape: [3 * h], offset: qb.offset))
        heads = c.numAttentionHeads
    }

    var hiddenSize: Int { query.outFeatures }
    var headSize: Int { hiddenSize / heads }

    /// context = softmax(Q·Kᵀ/√d)·V for every (sequence, head), over real tokens only: masked keys
    /// are simply absent, which is exact (transformers' additive mask makes their weights exactly 0).
    /// `qkv` is [T, 3H]; context is [T, H] with the heads side by side. `fused`: one pass per
    /// block of query rows with the packed micro-kernel (inference, `BLAS.canFuseAttention`).
    func attend(
        _ qkv: UnsafePointer<Float>, tokens: RealTokens, context: UnsafeMutablePointer<Float>,
        storage: AttentionStorage, fused: Bool
    ) {
        let h = hiddenSize, d = headSize, heads = heads
        let scale = 1 / Float(d).squareRoot()
        nonisolated(unsafe) let qkv = qkv, context = context
        switch storage {
        case .scratch(let workerScores, let perWorker, let workers, let items):
            nonisolated(unsafe) let scores = workerScores
            Compute.parallelForWorker(items.count, workers: workers) { worker, item in
                let (s, head, firstRow) = items[item]
                let len = tokens.sequenceLength[s], start = tokens.sequenceStart[s]
                let rows = min(attentionBlockRows, len - firstRow)
                let sc = scores + worker * perWorker
                let q = qkv + (start + firstRow) * 3 * h + head * d
                let k = qkv + start * 3 * h + h + head * d
                let out = context + (start + firstRow) * h + head * d
                if fused {
                    BLAS.fusedAttention(
                        q: q, k: k, v: k + h, ld: 3 * h, keys: len, headSize: d, rows: rows, scale: scale,
                        out: out, ldo: h, scratch: sc)
                    return
                }
                BLAS.sgemm(
                    transB: true, m: rows, n: len, k: d, alpha: scale, a: q, lda: 3 * h, b: k, ldb: 3 * h,
                    c: sc, ldc: len)
                Kernels.softmax(sc, cols: len, ld: len, rows: 0..<rows)
                BLAS.sgemm(m: rows, n: d, k: len, a: sc, lda: len, b: k + h, ldb: 3 * h, c: out, ldc: h)
            }
        case .kept(let keptProbabilities, let keptMasks, let offsets, let keptScratch, let workers):
            nonisolated(unsafe) let probabilities = keptProbabilities, masks = keptMasks, scratch = keptScratch
            let maxLen = tokens.sequenceLength.max() ?? 0
            Compute.parallelForWorker(tokens.sequenceLength.count * heads, workers: workers) { worker, item in
                let seq = item / heads, head = item % heads
                let len = tokens.sequenceLength[seq], start = tokens.sequenceStart[seq]
                if len == 0 { return }
                let pr = probabilities + offsets[item]
                let q = qkv + start * 3 * h + head * d
                BLAS.sgemm(
                    transB: true, m: len, n: len, k: d, alpha: scale, a: q, lda: 3 * h, b: q + h, ldb: 3 * h,
                    c: pr, ldc: len)
                Kernels.softmax(pr, cols: len, ld: len, rows: 0..<len)
                var used = UnsafePointer(pr)
                if let masks {
                    let mk = masks + offsets[item], dropped = scratch + 2 * worker * maxLen * maxLen
                    for i in 0..<(len * len) { dropped[i] = pr[i] * mk[i] }
                    used = UnsafePointer(dropped)
                }
                BLAS.sgemm(
                    m: len, n: d, k: len, a: used, lda: len, b: q + 2 * h, ldb: 3 * h,
                    c: context + start * h + head * d, ldc: h)
            }
        }
    }

    /// The backward of `attend` (training storage only): from the context's gradient to the
    /// gradient of the fused Q/K/V rows. Per (sequence, head): dP = dctx·Vᵀ, dV = Pᵀ·dctx,
    /// dS = softmax'(dP), dQ = scale·dS·K, dK = scale·dSᵀ·Q.
    func attendBackward(
        _ dContext: UnsafePointer<Float>, qkv: UnsafePointer<Float>, tokens: RealTokens,
        storage: AttentionStorage, qkvGradient: UnsafeMutablePointer<Float>
    ) {
        guard case .kept(let keptProbabilities, let keptMasks, let offsets, let keptScratch, let workers) = storage
        else {
            preconditionFailure("attention's backward needs the probabilities a training forward keeps")
        }
        let h = hiddenSize, d = headSize, heads = heads
        let scale = 1 / Float(d).squareRoot()
        let maxLen = tokens.sequenceLength.max() ?? 0
        nonisolated(unsafe) let qkv = qkv, probabilities = keptProbabilities, masks = keptMasks, scratch = keptScratch
        nonisolated(unsafe) let dq = qkvGradient, dc = dContext
        Compute.parallelForWorker(tokens.sequenceLength.count * heads, workers: workers) { worker, item in
            let seq = item / heads, head = item % heads
            let len = tokens.sequenceLength[seq], start = tokens.sequenceStart[seq]
            if len == 0 { return }
            let pr = probabilities + offsets[item]
            let dp = scratch + 2 * worker * maxLen * maxLen
            let q = qkv + start * 3 * h + head * d, k = q + h, v = q + 2 * h
            let dqh = dq + start * 3 * h + head * d, dkh = dqh + h, dvh = dqh + 2 * h
            let dch = dc + start * h + head * d
            var used = UnsafePointer(pr)
            let mk = masks.map { $0 + offsets[item] }
            if let mk {
                let dropped = dp + maxLen * maxLen
                for i in 0..<(len * len) { dropped[i] = pr[i] * mk[i] }
                used = UnsafePointer(dropped)
            }
            BLAS.sgemm(transB: true, m: len, n: len, k: d, a: dch, lda: h, b: v, ldb: 3 * h, c: dp, ldc: len)
            BLAS.sgemm(transA: true, m: len, n: d, k: len, a: used, lda: len, b: dch, ldb: h, c: dvh, ldc: 3 * h)
            if let mk { for i in 0..<(len * len) { dp[i] *= mk[i] } }
            Kernels.softmaxBackward(p: pr, dp: dp, ds: dp, cols: len, ld: len, rows: 0..<len)
            BLAS.sgemm(m: len, n: d, k: len, alpha: scale, a: dp, lda: len, b: k, ldb: 3 * h, c: dqh, ldc: 3 * h)
            BLAS.sgemm(
                transA: true, m: len, n: d, k: len, alpha: scale, a: dp, lda: len, b: q, ldb: 3 * h,
                c: dkh, ldc: 3 * h)
        }
    }
}

/// The inference work items of attention: one (sequence, head, block of query rows) each.
func attentionItems(_ tokens: RealTokens, heads: Int) -> [(Int, Int, Int)] {
    var items: [(Int, Int, Int)] = []
    for s in tokens.sequenceStart.indices where tokens.sequenceLength[s] > 0 {
        for head in 0..<heads {
            for row in stride(from: 0, to: tokens.sequenceLength[s], by: attentionBlockRows) {
                items.append((s, head, row))
            }
        }
    }
    return items
}

/// Query rows per inference attention work item: BERT's whole sequences. Smaller blocks (32–128
/// rows, to keep scores in L2) measured 4–10% slower at 8x512: K is then packed once per block.
let attentionBlockRows = 512

/// transformers' BertSelfOutput and BertOutput: dense, dropout, residual, LayerNorm.
public struct BertResidualOutput: Sendable {
    /// The sub-layer's output projection, to the hidden size ("dense").
    public let dense: Linear
    /// The LayerNorm over the projection plus the residual ("LayerNorm").
    public let layerNorm: LayerNorm

    init(_ layout: inout ParameterLayout, _ prefix: String, out: Int, in inFeatures: Int) {
        dense = Linear(&layout, prefix + ".dense", out: out, in: inFeatures)
        layerNorm = LayerNorm(&layout, prefix + ".LayerNorm", size: out)
    }

    /// sum = dense(input) ⊙ mask + residual, output = LayerNorm(sum); row block by row block while
    /// each is in cache. `output` may equal `residual` (inference).
    func forward(
        _ input: UnsafePointer<Float>, residual: UnsafePointer<Float>, rows t: Int,
        sum: UnsafeMutablePointer<Float>, mask: FloatBuffer, statistics: RowStatistics?,
        output: UnsafeMutablePointer<Float>, eps: Float, parameters p: ParameterStore,
        matrices: InferenceMatrices?
    ) {
        let h = dense.outFeatures
        dense.forward(input, rows: t, output: sum, parameters: p, matrices: matrices) { rows in
            applyMask(mask, to: sum, cols: h, rows: rows)
            layerNorm.residualForward(
                sum, residual: residual, output: output, rows: rows, eps: eps, parameters: p,
                statistics: statistics)
        }
    }

    /// The backward of `forward`: from the output's gradient `dy`, writes the residual's gradient
    /// (`residualGradient`, which is also the sum's) and the dense input's (`inputGradient`).
    /// `scratch` holds [T, out] floats.
    func backward(
        _ dy: UnsafePointer<Float>, input: UnsafePointer<Float>, sum: UnsafePointer<Float>, mask: FloatBuffer,
        statistics: RowStatistics, rows t: Int, residualGradient: UnsafeMutablePointer<Float>,
        inputGradient: UnsafeMutablePointer<Float>, accumulateInput: Bool = false,
        scratch dz: UnsafeMutablePointer<Float>, parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        layerNorm.backward(
            dy, input: sum, statistics: statistics, inputGradient: dz, rows: t, parameters: p, gradients: g)
        residualGradient.update(from: dz, count: t * dense.outFeatures)
        applyMask(mask, to: dz)
        dense.backward(
            dz, input: input, rows: t, inputGradient: inputGradient, accumulateInput: accumulateInput,
            parameters: p, gradients: g)
    }
}

/// transformers' BertAttention: self-attention, then its output block.
public struct BertAttention: Sendable {
    /// The self-attention ("attention.self"; `self` is taken in Swift).
    public let self_: BertSelfAttention
    /// Its output block: dense, residual and LayerNorm ("attention.output").
    public let output: BertResidualOutput

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        self_ = BertSelfAttention(&layout, prefix + ".self", c)
        output = BertResidualOutput(&layout, prefix + ".output", out: c.hiddenSize, in: c.hiddenSize)
    }

    func forward(
        _ b: LayerBuffers, tokens: RealTokens, eps: Float, parameters p: ParameterStore,
        matrices: InferenceMatrices?
    ) {
        let t = tokens.tokenCount
        self_.qkv.forward(b.input, rows: t, output: b.qkv, parameters: p, matrices: matrices)
        let fused = matrices != nil && BLAS.canFuseAttention(headSize: self_.headSize)
        self_.attend(b.qkv, tokens: tokens, context: b.context, storage: b.attention, fused: fused)
        output.forward(
            b.context, residual: b.input, rows: t, sum: b.attentionSum, mask: b.attentionMask,
            statistics: b.attentionStatistics, output: b.attentionNormed, eps: eps, parameters: p,
            matrices: matrices)
    }

    /// From the gradient of attentionNormed (`dy`) to the input's (`inputGradient`, written).
    func backward(
        _ dy: UnsafePointer<Float>, _ b: LayerBuffers, tokens: RealTokens, scratch s: GradientScratch,
        inputGradient dx: UnsafeMutablePointer<Float>, parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let t = tokens.tokenCount
        output.backward(
            dy, input: b.context, sum: b.attentionSum, mask: b.attentionMask,
            statistics: b.attentionStatistics!, rows: t, residualGradient: dx, inputGradient: s.context,
            scratch: s.sum, parameters: p, gradients: g)
        self_.attendBackward(s.context, qkv: b.qkv, tokens: tokens, storage: b.attention, qkvGradient: s.qkv)
        self_.qkv.backward(
            s.qkv, input: b.input, rows: t, inputGradient: dx, accumulateInput: true,
            parameters: p, gradients: g)
    }
}

/// The backward's buffers for one layer's gradients, reused layer after layer.
struct GradientScratch {
    let buffers: [FloatBuffer]
    let sum: UnsafeMutablePointer<Float>  // [T, H]
    let normed: UnsafeMutablePointer<Float>  // [T, H]
    let activated: UnsafeMutablePointer<Float>  // [T, I]
    let qkv: UnsafeMutablePointer<Float>  // [T, 3H]
    let context: UnsafeMutablePointer<Float>  // [T, H]

    init(tokens t: Int, config c: BertConfig) {
        let h = c.hiddenSize
        buffers = [t * h, t * h, t * c.intermediateSize, t * 3 * h, t * h].map { FloatBuffer(count: $0) }
        sum = buffers[0].pointer
        normed = buffers[1].pointer
        activated = buffers[2].pointer
        qkv = buffers[3].pointer
        context = buffers[4].pointer
    }
}
