import BertCompute
import Foundation

/// Dropout in training mode, as BERT places it: after the embeddings' LayerNorm, on the attention
/// probabilities, and on each sub-layer's output before the residual. Masks are functions of
/// `seed` (and of the layer, site and item), so a step can be replayed exactly.
public struct Dropout: Sendable, Equatable {
    public var hiddenProbability: Float
    public var attentionProbability: Float
    public var seed: UInt64
    public init(hiddenProbability: Float, attentionProbability: Float, seed: UInt64) {
        self.hiddenProbability = hiddenProbability
        self.attentionProbability = attentionProbability
        self.seed = seed
    }

    /// A mask of `count` values: 0 with probability p, else 1/(1 − p).
    public func mask(_ out: UnsafeMutablePointer<Float>, count: Int, probability p: Float, stream: UInt64) {
        var rng = SeededRandom(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        let keep = 1 / (1 - p)
        for i in 0..<count { out[i] = rng.nextUnitFloat() < p ? 0 : keep }
    }
}

/// Everything a backward pass through BertModel needs from its forward: each layer's input, the
/// Q/K/V projections, the attention probabilities, the LayerNorms' inputs and statistics, the
/// feed-forward's pre-activation. Kept per layer on the packed (real) tokens.
public final class EncoderActivations: @unchecked Sendable {
    struct Layer {
        var input: FloatBuffer        // [T, H] the layer's input (residual stream)
        var qkv: FloatBuffer          // [T, 3H]
        var probs: FloatBuffer        // Σ over (sequence, head) of L² attention probabilities
        var ctx: FloatBuffer          // [T, H]
        var z1: FloatBuffer           // [T, H] attention output + residual (LayerNorm input)
        var mean1: FloatBuffer, rstd1: FloatBuffer
        var h1: FloatBuffer           // [T, H] after the attention LayerNorm
        var pre: FloatBuffer          // [T, I] feed-forward pre-activation
        var act: FloatBuffer          // [T, I] after the activation
        var z2: FloatBuffer           // [T, H] feed-forward output + residual (LayerNorm input)
        var mean2: FloatBuffer, rstd2: FloatBuffer
        // Dropout masks (empty without dropout).
        var probsMask = FloatBuffer(count: 0)
        var attentionOutputMask = FloatBuffer(count: 0)
        var outputMask = FloatBuffer(count: 0)
    }
    var dropout: Dropout?
    var embeddingMask = FloatBuffer(count: 0)
    let packed: PackedBatch
    var embeddingSum: FloatBuffer     // [T, H] word + position + type (LayerNorm input)
    var mean0: FloatBuffer, rstd0: FloatBuffer
    var layers: [Layer] = []
    /// [T, H] the encoder's output (last hidden state on the packed tokens).
    var output: FloatBuffer
    /// Pooler: its input rows (first token of each sequence) and tanh output, [B, H].
    var poolerInput: FloatBuffer?
    var poolerOutput: FloatBuffer?
    /// Offsets of each (sequence, head) block in `probs`.
    let probOffsets: [Int]

    init(packed: PackedBatch, config c: BertConfig) {
        self.packed = packed
        let t = packed.tokenCount, h = c.hiddenSize
        embeddingSum = FloatBuffer(count: t * h)
        mean0 = FloatBuffer(count: t)
        rstd0 = FloatBuffer(count: t)
        output = FloatBuffer(count: t * h)
        var offsets: [Int] = []
        var total = 0
        for s in packed.sequenceLength.indices {
            for _ in 0..<c.numAttentionHeads {
                offsets.append(total)
                total += packed.sequenceLength[s] * packed.sequenceLength[s]
            }
        }
        probOffsets = offsets
        for _ in 0..<c.numHiddenLayers {
            layers.append(Layer(input: FloatBuffer(count: t * h), qkv: FloatBuffer(count: t * 3 * h),
                                probs: FloatBuffer(count: total), ctx: FloatBuffer(count: t * h),
                                z1: FloatBuffer(count: t * h), mean1: FloatBuffer(count: t), rstd1: FloatBuffer(count: t),
                                h1: FloatBuffer(count: t * h), pre: FloatBuffer(count: t * c.intermediateSize),
                                act: FloatBuffer(count: t * c.intermediateSize),
                                z2: FloatBuffer(count: t * h), mean2: FloatBuffer(count: t), rstd2: FloatBuffer(count: t)))
        }
    }

    /// The last hidden state as a zero-padded [B, S, H] array.
    public var lastHiddenState: [Float] { packed.unpack(output.pointer, cols: output.count / max(1, packed.tokenCount)) }
    public var pooled: [Float]? { poolerOutput?.toArray() }
}

extension BertModelWeights {
    /// The forward pass, keeping what the backward needs (no dropout: evaluation-mode numbers,
    /// equal to `forward`).
    public func forwardForTraining(_ batch: EncoderBatch, parameters p: ParameterStore,
                                   dropout: Dropout? = nil) throws -> EncoderActivations {
        let packed = try pack(batch)
        let c = config
        let a = EncoderActivations(packed: packed, config: c)
        let dropout = dropout.flatMap { $0.hiddenProbability > 0 || $0.attentionProbability > 0 ? $0 : nil }
        a.dropout = dropout
        let t = packed.tokenCount, h = c.hiddenSize, inter = c.intermediateSize
        let heads = c.numAttentionHeads, d = c.headSize
        let eps = Float(c.layerNormEps)
        let scale = 1 / Float(d).squareRoot()
        let emb = embeddings
        packed.ids.withUnsafeBufferPointer { ids in
            packed.positions.withUnsafeBufferPointer { pos in
                packed.types.withUnsafeBufferPointer { types in
                    Kernels.gatherSum3(a.embeddingSum.pointer, cols: h, rows: 0..<t,
                                       a: p[emb.wordEmbeddings], ia: ids.baseAddress!,
                                       b: p[emb.positionEmbeddings], ib: pos.baseAddress!,
                                       c: p[emb.tokenTypeEmbeddings], ic: types.baseAddress!)
                }
            }
        }
        var x = a.layers.first?.input.pointer ?? a.output.pointer
        Kernels.layerNorm(a.embeddingSum.pointer, output: x, gamma: p[emb.layerNorm.weight], beta: p[emb.layerNorm.bias],
                          eps: eps, cols: h, rows: 0..<t, mean: a.mean0.pointer, rstd: a.rstd0.pointer)
        if let dropout, dropout.hiddenProbability > 0 {
            a.embeddingMask = FloatBuffer(count: t * h)
            dropout.mask(a.embeddingMask.pointer, count: t * h, probability: dropout.hiddenProbability, stream: 1)
            applyMask(a.embeddingMask, to: x)
        }
        for (l, layer) in encoder.layer.enumerated() {
            if let dropout {
                if dropout.attentionProbability > 0 { a.layers[l].probsMask = FloatBuffer(count: a.layers[l].probs.count) }
                if dropout.hiddenProbability > 0 {
                    a.layers[l].attentionOutputMask = FloatBuffer(count: t * h)
                    a.layers[l].outputMask = FloatBuffer(count: t * h)
                    dropout.mask(a.layers[l].attentionOutputMask.pointer, count: t * h, probability: dropout.hiddenProbability,
                                 stream: UInt64(100 + 3 * l))
                    dropout.mask(a.layers[l].outputMask.pointer, count: t * h, probability: dropout.hiddenProbability,
                                 stream: UInt64(101 + 3 * l))
                }
            }
            let s = a.layers[l]
            let att = layer.attention
            linear(x, rows: t, inFeatures: h, weight: p.data.pointer + att.self_.fusedWeightOffset, outFeatures: 3 * h,
                   bias: p.data.pointer + att.self_.fusedBiasOffset, output: s.qkv.pointer) { _ in }
            nonisolated(unsafe) let qkv = s.qkv.pointer, ctx = s.ctx.pointer, probs = s.probs.pointer
            nonisolated(unsafe) let probsMask = s.probsMask.count > 0 ? s.probsMask.pointer : nil
            let maxLen = packed.sequenceLength.max() ?? 0
            let dropped = FloatBuffer(count: probsMask == nil ? 0 : Compute.threads * maxLen * maxLen)
            nonisolated(unsafe) let droppedBase = dropped.pointer
            Compute.parallelForWorker(packed.sequenceLength.count * heads) { worker, item in
                let seq = item / heads, head = item % heads
                let len = packed.sequenceLength[seq], start = packed.sequenceStart[seq]
                if len == 0 { return }
                let pr = probs + a.probOffsets[item]
                let q = qkv + start * 3 * h + head * d
                BLAS.sgemm(transB: true, m: len, n: len, k: d, alpha: scale, a: q, lda: 3 * h, b: q + h, ldb: 3 * h,
                           c: pr, ldc: len)
                Kernels.softmax(pr, cols: len, ld: len, rows: 0..<len)
                var used = UnsafePointer(pr)
                if let probsMask, let dropout {
                    let mk = probsMask + a.probOffsets[item]
                    dropout.mask(mk, count: len * len, probability: dropout.attentionProbability,
                                 stream: UInt64(1_000_000 + l * 100_000 + item))
                    let dp = droppedBase + worker * maxLen * maxLen
                    for i in 0..<(len * len) { dp[i] = pr[i] * mk[i] }
                    used = UnsafePointer(dp)
                }
                BLAS.sgemm(m: len, n: d, k: len, a: used, lda: len, b: q + 2 * h, ldb: 3 * h,
                           c: ctx + start * h + head * d, ldc: h)
            }
            let ao = att.output
            linear(ctx, rows: t, inFeatures: h, weight: p[ao.dense.weight], outFeatures: h, bias: p[ao.dense.bias],
                   output: s.z1.pointer) { _ in }
            applyMask(s.attentionOutputMask, to: s.z1.pointer)
            Kernels.residualLayerNorm(s.z1.pointer, residual: x, output: s.h1.pointer, gamma: p[ao.layerNorm.weight],
                                      beta: p[ao.layerNorm.bias], eps: eps, cols: h, rows: 0..<t,
                                      mean: s.mean1.pointer, rstd: s.rstd1.pointer)
            let inter1 = layer.intermediate.dense
            linear(s.h1.pointer, rows: t, inFeatures: h, weight: p[inter1.weight], outFeatures: inter, bias: p[inter1.bias],
                   output: s.pre.pointer) { _ in }
            Kernels.activation(s.pre.pointer, output: s.act.pointer, cols: inter, rows: 0..<t, activation: c.activation)
            let out = layer.output
            linear(s.act.pointer, rows: t, inFeatures: inter, weight: p[out.dense.weight], outFeatures: h,
                   bias: p[out.dense.bias], output: s.z2.pointer) { _ in }
            applyMask(s.outputMask, to: s.z2.pointer)
            let next = l + 1 < a.layers.count ? a.layers[l + 1].input.pointer : a.output.pointer
            Kernels.residualLayerNorm(s.z2.pointer, residual: s.h1.pointer, output: next, gamma: p[out.layerNorm.weight],
                                      beta: p[out.layerNorm.bias], eps: eps, cols: h, rows: 0..<t,
                                      mean: s.mean2.pointer, rstd: s.rstd2.pointer)
            x = next
        }
        if let pooler {
            let b = packed.batchSize
            let input = FloatBuffer(count: b * h), output = FloatBuffer(count: b * h)
            for s in 0..<b where packed.sequenceLength[s] > 0 {
                (input.pointer + s * h).update(from: a.output.pointer + packed.sequenceStart[s] * h, count: h)
            }
            BLAS.sgemm(transB: true, m: b, n: h, k: h, a: input.pointer, lda: h, b: p[pooler.dense.weight], ldb: h,
                       c: output.pointer, ldc: h)
            Kernels.biasTanh(output.pointer, bias: p[pooler.dense.bias], output: output.pointer, cols: h, rows: 0..<b)
            a.poolerInput = input
            a.poolerOutput = output
        }
        return a
    }

    /// Backpropagates the gradient of the last hidden state (`dHidden`, [B, S, H] zero-padded;
    /// padded rows are ignored) and of the pooler output (`dPooled`, [B, H]) into `grads`, a store
    /// with the same layout as the parameters; gradients are added (+=).
    public func backward(_ a: EncoderActivations, dHidden: [Float]?, dPooled: [Float]?,
                         parameters p: ParameterStore, gradients g: ParameterStore) {
        let c = config, packed = a.packed
        let t = packed.tokenCount, h = c.hiddenSize, inter = c.intermediateSize
        let heads = c.numAttentionHeads, d = c.headSize
        let scale = 1 / Float(d).squareRoot()
        let dx = FloatBuffer(count: t * h)  // gradient of the current layer's output
        if let dHidden {
            for (row, flat) in packed.origin.enumerated() {
                for j in 0..<h { dx.pointer[row * h + j] = dHidden[flat * h + j] }
            }
        }
        if let pooler, let dPooled, let input = a.poolerInput, let output = a.poolerOutput {
            let b = packed.batchSize
            let dpre = FloatBuffer(dPooled)
            Kernels.tanhBackward(dy: dpre.pointer, y: output.pointer, dx: dpre.pointer, count: b * h)
            let dInput = FloatBuffer(count: b * h)
            BLAS.linearBackward(dy: dpre.pointer, x: input.pointer, w: p[pooler.dense.weight], m: b, n: h, k: h,
                                dx: dInput.pointer, dw: g[pooler.dense.weight], db: g[pooler.dense.bias])
            for s in 0..<b where packed.sequenceLength[s] > 0 {
                let row = dx.pointer + packed.sequenceStart[s] * h
                for j in 0..<h { row[j] += dInput.pointer[s * h + j] }
            }
        }
        let dz = FloatBuffer(count: t * h), dh1 = FloatBuffer(count: t * h)
        let dact = FloatBuffer(count: t * inter), dqkv = FloatBuffer(count: t * 3 * h), dctx = FloatBuffer(count: t * h)
        for l in stride(from: encoder.layer.count - 1, through: 0, by: -1) {
            let layer = encoder.layer[l], s = a.layers[l]
            let out = layer.output, inter1 = layer.intermediate.dense, ao = layer.attention.output
            // Output LayerNorm: dz2; the residual carries it to h1.
            Kernels.layerNormBackward(dy: dx.pointer, x: s.z2.pointer, mean: s.mean2.pointer, rstd: s.rstd2.pointer,
                                      gamma: p[out.layerNorm.weight], dx: dz.pointer, dgamma: g[out.layerNorm.weight],
                                      dbeta: g[out.layerNorm.bias], cols: h, rows: 0..<t)
            dh1.pointer.update(from: dz.pointer, count: t * h)
            applyMask(s.outputMask, to: dz.pointer)
            BLAS.linearBackward(dy: dz.pointer, x: s.act.pointer, w: p[out.dense.weight], m: t, n: h, k: inter,
                                dx: dact.pointer, dw: g[out.dense.weight], db: g[out.dense.bias])
            Kernels.activationBackward(dy: dact.pointer, x: s.pre.pointer, dx: dact.pointer, count: t * inter,
                                       activation: c.activation)
            BLAS.linearBackward(dy: dact.pointer, x: s.h1.pointer, w: p[inter1.weight], m: t, n: inter, k: h,
                                dx: dh1.pointer, dw: g[inter1.weight], db: g[inter1.bias], accumulateInput: true)
            // Attention LayerNorm: dz1; the residual carries it to the layer's input.
            Kernels.layerNormBackward(dy: dh1.pointer, x: s.z1.pointer, mean: s.mean1.pointer, rstd: s.rstd1.pointer,
                                      gamma: p[ao.layerNorm.weight], dx: dz.pointer, dgamma: g[ao.layerNorm.weight],
                                      dbeta: g[ao.layerNorm.bias], cols: h, rows: 0..<t)
            dx.pointer.update(from: dz.pointer, count: t * h)
            applyMask(s.attentionOutputMask, to: dz.pointer)
            BLAS.linearBackward(dy: dz.pointer, x: s.ctx.pointer, w: p[ao.dense.weight], m: t, n: h, k: h,
                                dx: dctx.pointer, dw: g[ao.dense.weight], db: g[ao.dense.bias])
            // Attention, per (sequence, head): dP = dctx·Vᵀ, dV = Pᵀ·dctx, dS = softmax'(dP),
            // dQ = scale·dS·K, dK = scale·dSᵀ·Q.
            nonisolated(unsafe) let qkv = s.qkv.pointer, probs = s.probs.pointer
            nonisolated(unsafe) let dq = dqkv.pointer, dc = dctx.pointer
            let maxLen = packed.sequenceLength.max() ?? 0
            let scratch = FloatBuffer(count: 2 * Compute.threads * maxLen * maxLen)
            nonisolated(unsafe) let sc = scratch.pointer
            nonisolated(unsafe) let probsMask = s.probsMask.count > 0 ? s.probsMask.pointer : nil
            Compute.parallelForWorker(packed.sequenceLength.count * heads) { worker, item in
                let seq = item / heads, head = item % heads
                let len = packed.sequenceLength[seq], start = packed.sequenceStart[seq]
                if len == 0 { return }
                let pr = probs + a.probOffsets[item]
                let dp = sc + 2 * worker * maxLen * maxLen
                let q = qkv + start * 3 * h + head * d, k = q + h, v = q + 2 * h
                let dqh = dq + start * 3 * h + head * d, dkh = dqh + h, dvh = dqh + 2 * h
                let dch = dc + start * h + head * d
                var used = UnsafePointer(pr)
                let mk = probsMask.map { $0 + a.probOffsets[item] }
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
                BLAS.sgemm(transA: true, m: len, n: d, k: len, alpha: scale, a: dp, lda: len, b: q, ldb: 3 * h,
                           c: dkh, ldc: 3 * h)
            }
            let sa = layer.attention.self_
            BLAS.linearBackward(dy: dqkv.pointer, x: s.input.pointer, w: p.data.pointer + sa.fusedWeightOffset,
                                m: t, n: 3 * h, k: h, dx: dx.pointer, dw: g.data.pointer + sa.fusedWeightOffset,
                                db: g.data.pointer + sa.fusedBiasOffset, accumulateInput: true)
        }
        // Embeddings: dropout, LayerNorm, then each table's rows.
        applyMask(a.embeddingMask, to: dx.pointer)
        let emb = embeddings
        Kernels.layerNormBackward(dy: dx.pointer, x: a.embeddingSum.pointer, mean: a.mean0.pointer, rstd: a.rstd0.pointer,
                                  gamma: p[emb.layerNorm.weight], dx: dz.pointer, dgamma: g[emb.layerNorm.weight],
                                  dbeta: g[emb.layerNorm.bias], cols: h, rows: 0..<t)
        for (indices, table) in [(packed.ids, emb.wordEmbeddings), (packed.positions, emb.positionEmbeddings),
                                 (packed.types, emb.tokenTypeEmbeddings)] {
            indices.withUnsafeBufferPointer {
                Kernels.embeddingBackward(dy: dz.pointer, ids: $0.baseAddress!, dtable: g[table], cols: h, rows: 0..<t)
            }
        }
    }
}

/// x ⊙= mask, a dropout mask of the same size (an empty mask, dropout off, leaves x alone). The
/// forward applies it to an output, the backward to that output's gradient.
private func applyMask(_ mask: FloatBuffer, to x: UnsafeMutablePointer<Float>) {
    if mask.count == 0 { return }
    for i in 0..<mask.count { x[i] *= mask.pointer[i] }
}

extension BertModel {
    /// A zeroed gradient block with the parameters' layout.
    public func makeGradients() throws -> ParameterStore { try ParameterStore(layout: parameters.layout) }

    /// The forward pass keeping what `backward` needs.
    public func forwardForTraining(_ batch: EncoderBatch, dropout: Dropout? = nil) throws -> EncoderActivations {
        try weights.forwardForTraining(batch, parameters: parameters, dropout: dropout)
    }

    /// Adds the gradients of a loss into `gradients`, given the loss's gradient with respect to
    /// the last hidden state ([B, S, H]) and the pooler output ([B, H]).
    public func backward(_ activations: EncoderActivations, dHidden: [Float]?, dPooled: [Float]?,
                         into gradients: ParameterStore) {
        weights.backward(activations, dHidden: dHidden, dPooled: dPooled, parameters: parameters, gradients: gradients)
    }
}
