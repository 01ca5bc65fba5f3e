import BertCompute
import Foundation

/// A padded batch of token sequences, as transformers' BertModel takes it ([B, S] each, row-major).
public struct EncoderBatch: Sendable {
    public var batchSize: Int
    public var sequenceLength: Int
    public var inputIds: [Int32]
    /// nil means all zeros (segment A).
    public var tokenTypeIds: [Int32]?
    /// 1 for real tokens, 0 for padding; nil means all ones. Any pattern works (right or left padding).
    public var attentionMask: [Int32]?
    /// nil means 0..<S on every row, as transformers (also with left padding).
    public var positionIds: [Int32]?

    public init(batchSize: Int, sequenceLength: Int, inputIds: [Int32], tokenTypeIds: [Int32]? = nil,
                attentionMask: [Int32]? = nil, positionIds: [Int32]? = nil) {
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        self.positionIds = positionIds
    }

    /// Right-pads ragged sequences to the longest one.
    public static func padded(_ sequences: [[Int32]], tokenTypeIds: [[Int32]]? = nil, padId: Int32 = 0) -> EncoderBatch {
        let s = sequences.map(\.count).max() ?? 0
        var ids = [Int32](repeating: padId, count: sequences.count * s)
        var types = [Int32](repeating: 0, count: sequences.count * s)
        var mask = [Int32](repeating: 0, count: sequences.count * s)
        for (b, seq) in sequences.enumerated() {
            for (p, id) in seq.enumerated() {
                ids[b * s + p] = id
                mask[b * s + p] = 1
                if let t = tokenTypeIds?[b], p < t.count { types[b * s + p] = t[p] }
            }
        }
        return EncoderBatch(batchSize: sequences.count, sequenceLength: s, inputIds: ids,
                            tokenTypeIds: tokenTypeIds == nil ? nil : types, attentionMask: mask)
    }
}

/// What BertModel returns. Rows of padded positions are zero (transformers fills them with values
/// that nothing downstream may use; we do not compute them at all).
public struct EncoderOutput: Sendable {
    public let batchSize: Int
    public let sequenceLength: Int
    public let hiddenSize: Int
    /// [B, S, H].
    public var lastHiddenState: [Float]
    /// On request: the embeddings' output then every layer's output, each [B, S, H].
    public var hiddenStates: [[Float]]
    /// [B, H]: tanh(dense(hidden state of the first real token)), when the model has a pooler.
    public var poolerOutput: [Float]?

    /// The hidden vector of one position of `state` (default: the last hidden state).
    public func vector(batch b: Int, position p: Int, layer: Int? = nil) -> ArraySlice<Float> {
        let start = (b * sequenceLength + p) * hiddenSize
        let source = layer.map { hiddenStates[$0] } ?? lastHiddenState
        return source[start..<(start + hiddenSize)]
    }
}

/// The parameters of a BertModel (embeddings, encoder, optional pooler) as a tree of modules whose
/// paths are the checkpoint names, laid out inside a parameter block (possibly with heads beside it).
public struct BertModelWeights: Sendable {
    public let config: BertConfig
    public let prefix: String
    public let embeddings: BertEmbeddings
    public let encoder: BertEncoder
    public let pooler: BertPooler?

    public init(_ layout: inout ParameterLayout, config c: BertConfig, prefix: String = "", addPoolingLayer: Bool = true) {
        config = c
        self.prefix = prefix
        embeddings = BertEmbeddings(&layout, prefix + "embeddings", c)
        encoder = BertEncoder(layer: (0..<c.numHiddenLayers).map { BertLayer(&layout, prefix + "encoder.layer.\($0)", c) })
        pooler = addPoolingLayer
            ? BertPooler(dense: Linear(&layout, prefix + "pooler.dense", out: c.hiddenSize, in: c.hiddenSize)) : nil
    }
}

/// Transformers' BertModel: embeddings, L post-LayerNorm encoder blocks, a tanh pooler on [CLS].
/// One forward at a time per instance (its scratch memory is reused); use one instance per thread
/// for concurrent forwards, or let one forward use all cores (the default).
public final class BertModel: @unchecked Sendable {
    public let config: BertConfig
    public let weights: BertModelWeights
    public let parameters: ParameterStore
    private let workspace = Workspace()
    private let lock = NSLock()

    /// A model with all parameters zero (load or initialise them next).
    public init(config: BertConfig, addPoolingLayer: Bool = true) throws {
        try config.validate()
        self.config = config
        var layout = ParameterLayout()
        weights = BertModelWeights(&layout, config: config, addPoolingLayer: addPoolingLayer)
        parameters = try ParameterStore(layout: layout)
    }

    public var embeddings: BertEmbeddings { weights.embeddings }
    public var encoder: BertEncoder { weights.encoder }
    public var pooler: BertPooler? { weights.pooler }
    public var parameterCount: Int { parameters.layout.totalCount }

    /// BERT's initialisation: weights N(0, initializer_range), biases 0, LayerNorm 1 and 0, and the
    /// padding token's embedding row 0 (as transformers' _init_weights).
    public func initializeWeights(seed: UInt64) {
        var rng = SeededRandom(seed: seed)
        initializeBertParameters(parameters, config: config, rng: &rng)
        let pad = config.padTokenId
        (parameters[weights.embeddings.wordEmbeddings] + pad * config.hiddenSize)
            .update(repeating: 0, count: config.hiddenSize)
    }

    public func forward(_ batch: EncoderBatch, outputHiddenStates: Bool = false) throws -> EncoderOutput {
        lock.lock()
        defer { lock.unlock() }
        if let packed = inferenceWeights, !packed.matches(parameters) {
            // The parameters changed since they were packed (training, loading): pack them again.
            inferenceWeights = InferenceWeights(weights, parameters: parameters, config: config)
        }
        return try weights.forward(batch, parameters: parameters, workspace: workspace,
                                   outputHiddenStates: outputHiddenStates, packed: inferenceWeights)
    }

    /// Packs the encoder's weight matrices once, for inference: `forward` then multiplies batches of
    /// more than a few tokens (up to `BLAS.packedRowLimit` a thread) against these copies instead
    /// of having BLAS pack the weights again on every call: our kernel is about as fast as
    /// OpenBLAS's, the gain is that packing, a few percent of the forward. Costs memory equal to
    /// the encoder's weight matrices. After changing the parameters, call it again; `forward`
    /// also checks a sample of every matrix and repacks when they changed (a training step or a
    /// load changes them all), but an edit of a few values could escape the sample.
    ///
    /// By default this packs only in builds whose packed kernel beats BLAS: built for the CPU with
    /// FMA (`-Xswiftc -target-cpu -Xswiftc native -Xswiftc -DBERT_FMA`, as the benchmarks build).
    /// A generic build's vectors are baseline SSE, while BLAS picks AVX2 kernels at run time; there
    /// this does nothing unless `always` is set.
    public func prepareForInference(always: Bool = false) {
        guard always || BLAS.packedGemmIsFast else { return }
        lock.lock()
        defer { lock.unlock() }
        inferenceWeights = InferenceWeights(weights, parameters: parameters, config: config)
    }

    /// Drops the packed copies (`forward` multiplies through BLAS again).
    public func releaseInferenceWeights() {
        lock.lock()
        defer { lock.unlock() }
        inferenceWeights = nil
    }

    private var inferenceWeights: InferenceWeights?  // guarded by lock
}

/// The encoder's weight matrices packed for `BLAS.packedGemmNT`, with a sample of the values they
/// were packed from (to notice that the parameters changed).
final class InferenceWeights: @unchecked Sendable {
    struct Layer {
        let qkv: PackedWeights, attentionOutput: PackedWeights, intermediate: PackedWeights, output: PackedWeights
    }
    let layers: [Layer]
    /// (offset into the parameter block, value) at spread positions of every packed matrix.
    private let samples: [(Int, Float)]

    init?(_ weights: BertModelWeights, parameters p: ParameterStore, config c: BertConfig) {
        let h = c.hiddenSize, inter = c.intermediateSize
        guard PackedWeights.canPack(n: h) && PackedWeights.canPack(n: inter) else { return nil }
        var samples: [(Int, Float)] = []
        let base = p.data.pointer
        func pack(_ offset: Int, n: Int, k: Int) -> PackedWeights {
            let count = n * k
            for s in 0..<64 { let o = offset + (s * 7919 + 13) % count; samples.append((o, base[o])) }
            return PackedWeights(base + offset, n: n, k: k)
        }
        layers = weights.encoder.layer.map { layer in
            let att = layer.attention
            return Layer(qkv: pack(att.self_.fusedWeightOffset, n: 3 * h, k: h),
                         attentionOutput: pack(att.output.dense.weight.offset, n: h, k: h),
                         intermediate: pack(layer.intermediate.dense.weight.offset, n: inter, k: h),
                         output: pack(layer.output.dense.weight.offset, n: h, k: inter))
        }
        self.samples = samples
    }

    /// Whether the sampled values are still what was packed.
    func matches(_ p: ParameterStore) -> Bool {
        let base = p.data.pointer
        for (o, v) in samples where base[o].bitPattern != v.bitPattern { return false }
        return true
    }
}

/// Initialises every tensor of a store by BERT's rules, in layout order.
public func initializeBertParameters(_ store: ParameterStore, config: BertConfig, rng: inout SeededRandom) {
    let std = config.initializerRange
    for t in store.layout.tensors {
        let p = store[t]
        if t.name.hasSuffix("LayerNorm.weight") {
            p.update(repeating: 1, count: t.count)
        } else if t.name.hasSuffix(".bias") || t.shape.count == 1 {
            p.update(repeating: 0, count: t.count)
        } else {
            for i in 0..<t.count { p[i] = Float(rng.nextGaussian() * std) }
        }
    }
}

extension BertModelWeights {
    /// Checks the batch against the model, and packs the real (unmasked) tokens of every sequence
    /// contiguously: all per-token work then skips padding entirely.
    func pack(_ batch: EncoderBatch) throws -> PackedBatch {
        let b = batch.batchSize, s = batch.sequenceLength
        guard b >= 0, s >= 0 else { throw BertError("batch size and sequence length must not be negative") }
        let (n, overflow) = b.multipliedReportingOverflow(by: s)
        guard !overflow else { throw BertError("batch size \(b) × sequence length \(s) is too large") }
        guard batch.inputIds.count == n else {
            throw BertError("input_ids has \(batch.inputIds.count) values, expected batch \(b) × length \(s) = \(n)")
        }
        if let t = batch.tokenTypeIds, t.count != n {
            throw BertError("token_type_ids has \(t.count) values, expected \(n)")
        }
        if let m = batch.attentionMask, m.count != n {
            throw BertError("attention_mask has \(m.count) values, expected \(n)")
        }
        if let p = batch.positionIds, p.count != n {
            throw BertError("position_ids has \(p.count) values, expected \(n)")
        }
        if batch.positionIds == nil && s > config.maxPositionEmbeddings {
            throw BertError("sequence length \(s) is longer than max_position_embeddings \(config.maxPositionEmbeddings); truncate the input")
        }
        var packed = PackedBatch(batchSize: b, sequenceLength: s)
        packed.ids.reserveCapacity(n)
        for bi in 0..<b {
            let start = packed.ids.count
            for p in 0..<s {
                let i = bi * s + p
                if let m = batch.attentionMask, m[i] == 0 { continue }
                let id = batch.inputIds[i]
                guard id >= 0 && Int(id) < config.vocabSize else {
                    throw BertError("input id \(id) at batch \(bi), position \(p) is outside the vocabulary (size \(config.vocabSize))")
                }
                let type = batch.tokenTypeIds?[i] ?? 0
                guard type >= 0 && Int(type) < config.typeVocabSize else {
                    throw BertError("token type id \(type) at batch \(bi), position \(p) is outside type_vocab_size \(config.typeVocabSize)")
                }
                let pos = batch.positionIds?[i] ?? Int32(p)
                guard pos >= 0 && Int(pos) < config.maxPositionEmbeddings else {
                    throw BertError("position id \(pos) at batch \(bi), position \(p) is outside max_position_embeddings \(config.maxPositionEmbeddings)")
                }
                packed.ids.append(id)
                packed.types.append(type)
                packed.positions.append(pos)
                packed.origin.append(i)
            }
            let length = packed.ids.count - start
            packed.sequenceStart.append(start)
            packed.sequenceLength.append(length)
        }
        return packed
    }

    func forward(_ batch: EncoderBatch, parameters: ParameterStore, workspace: Workspace,
                 outputHiddenStates: Bool, packed packedWeights: InferenceWeights? = nil) throws -> EncoderOutput {
        let packed = try pack(batch)
        let h = config.hiddenSize
        var output = EncoderOutput(batchSize: batch.batchSize, sequenceLength: batch.sequenceLength, hiddenSize: h,
                                   lastHiddenState: [], hiddenStates: [], poolerOutput: nil)
        var hiddenStates: [[Float]] = []
        let x = runEncoder(packed, parameters: parameters, workspace: workspace, packedWeights: packedWeights) { layerOutput in
            if outputHiddenStates { hiddenStates.append(packed.unpack(layerOutput, cols: h)) }
        }
        output.lastHiddenState = hiddenStates.last ?? packed.unpack(x, cols: h)
        output.hiddenStates = hiddenStates
        if let pooler {
            output.poolerOutput = runPooler(pooler, packed, hidden: x, parameters: parameters, workspace: workspace)
        }
        return output
    }

    /// Runs embeddings and every layer on the packed tokens; returns the final hidden states
    /// [T, H] (inside the workspace). `observe` sees the embeddings' output and each layer's.
    func runEncoder(_ packed: PackedBatch, parameters: ParameterStore, workspace: Workspace,
                    packedWeights: InferenceWeights? = nil,
                    observe: (UnsafeMutablePointer<Float>) -> Void) -> UnsafeMutablePointer<Float> {
        let c = config
        let t = packed.tokenCount, h = c.hiddenSize, inter = c.intermediateSize
        let heads = c.numAttentionHeads, d = c.headSize
        let maxLen = packed.sequenceLength.max() ?? 0
        let threads = Compute.threads
        // Carve the scratch: x | qkv | ctx | tmp | ffn | scores (one square per worker).
        // With packed weights (inference), attention runs fused per head when the head size allows.
        let fused = packedWeights != nil && BLAS.canFuseAttention(headSize: d)
        let scratchPerWorker = fused ? BLAS.fusedAttentionScratch(keys: maxLen, headSize: d) : attentionBlockRows * maxLen
        let sizes = [t * h, t * 3 * h, t * h, t * h, t * inter, threads * scratchPerWorker]
        let base = workspace.floats(sizes.reduce(0, +) + 16 * sizes.count)
        var offsets: [Int] = []
        var o = 0
        for s in sizes { offsets.append(o); o += (s + 15) / 16 * 16 }
        nonisolated(unsafe) let x = base + offsets[0]
        nonisolated(unsafe) let qkv = base + offsets[1]
        nonisolated(unsafe) let ctx = base + offsets[2]
        nonisolated(unsafe) let tmp = base + offsets[3]
        nonisolated(unsafe) let ffn = base + offsets[4]
        nonisolated(unsafe) let scores = base + offsets[5]
        let p = parameters
        let eps = Float(c.layerNormEps)

        // Embeddings: word + position + token type, then LayerNorm.
        let emb = embeddings
        packed.ids.withUnsafeBufferPointer { ids in
            packed.positions.withUnsafeBufferPointer { pos in
                packed.types.withUnsafeBufferPointer { types in
                    nonisolated(unsafe) let ids = ids.baseAddress!, pos = pos.baseAddress!, types = types.baseAddress!
                    Compute.parallelRanges(t, parts: rowParts(t, threads)) { rows in
                        Kernels.gatherSum3(x, cols: h, rows: rows,
                                           a: p[emb.wordEmbeddings], ia: ids,
                                           b: p[emb.positionEmbeddings], ib: pos,
                                           c: p[emb.tokenTypeEmbeddings], ic: types)
                        Kernels.layerNorm(x, output: x, gamma: p[emb.layerNorm.weight], beta: p[emb.layerNorm.bias],
                                          eps: eps, cols: h, rows: rows)
                    }
                }
            }
        }
        if t > 0 { observe(x) }
        if t == 0 { return x }

        let scale = 1 / Float(d).squareRoot()
        var attentionItems: [(Int, Int, Int)] = []
        for s in packed.sequenceStart.indices where packed.sequenceLength[s] > 0 {
            for head in 0..<heads {
                for row in stride(from: 0, to: packed.sequenceLength[s], by: attentionBlockRows) {
                    attentionItems.append((s, head, row))
                }
            }
        }
        for (index, layer) in encoder.layer.enumerated() {
            let att = layer.attention
            let pw = packedWeights?.layers[index]
            // Q, K, V in one product with the adjacent [3H, H] weights (and [3H] biases).
            linear(x, rows: t, inFeatures: h, weight: p.data.pointer + att.self_.fusedWeightOffset, outFeatures: 3 * h,
                   bias: p.data.pointer + att.self_.fusedBiasOffset, output: qkv, packed: pw?.qkv) { _ in }
            // Scaled dot-product attention over real tokens only. A work item is one (sequence, head,
            // block of query rows); masked keys are simply absent, which is exact (transformers'
            // additive mask makes their weights exactly 0).
            Compute.parallelForWorker(attentionItems.count) { worker, item in
                let (s, head, firstRow) = attentionItems[item]
                let len = packed.sequenceLength[s], start = packed.sequenceStart[s]
                let rows = min(attentionBlockRows, len - firstRow)
                let sc = scores + worker * scratchPerWorker
                let q = qkv + (start + firstRow) * 3 * h + head * d
                let k = qkv + start * 3 * h + h + head * d
                if fused {
                    BLAS.fusedAttention(q: q, k: k, v: k + h, ld: 3 * h, keys: len, headSize: d, rows: rows, scale: scale,
                                        out: ctx + (start + firstRow) * h + head * d, ldo: h, scratch: sc)
                    return
                }
                BLAS.sgemm(transB: true, m: rows, n: len, k: d, alpha: scale, a: q, lda: 3 * h, b: k, ldb: 3 * h,
                           c: sc, ldc: len)
                Kernels.softmax(sc, cols: len, ld: len, rows: 0..<rows)
                BLAS.sgemm(m: rows, n: d, k: len, a: sc, lda: len, b: k + h, ldb: 3 * h,
                           c: ctx + (start + firstRow) * h + head * d, ldc: h)
            }
            // Output projection, residual, LayerNorm.
            let ao = att.output
            linear(ctx, rows: t, inFeatures: h, weight: p[ao.dense.weight], outFeatures: h, bias: p[ao.dense.bias],
                   output: tmp, packed: pw?.attentionOutput) { rows in
                Kernels.residualLayerNorm(tmp, residual: x, output: x,
                                              gamma: p[ao.layerNorm.weight], beta: p[ao.layerNorm.bias], eps: eps,
                                              cols: h, rows: rows)
            }
            // Feed-forward: dense + activation, dense + residual + LayerNorm.
            let act = c.activation
            let inter1 = layer.intermediate.dense
            linear(x, rows: t, inFeatures: h, weight: p[inter1.weight], outFeatures: inter, bias: p[inter1.bias],
                   output: ffn, packed: pw?.intermediate) { rows in
                Kernels.activation(ffn, output: ffn, cols: inter, rows: rows, activation: act)
            }
            let out = layer.output
            linear(ffn, rows: t, inFeatures: inter, weight: p[out.dense.weight], outFeatures: h, bias: p[out.dense.bias],
                   output: tmp, packed: pw?.output) { rows in
                Kernels.residualLayerNorm(tmp, residual: x, output: x,
                                              gamma: p[out.layerNorm.weight], beta: p[out.layerNorm.bias], eps: eps,
                                              cols: h, rows: rows)
            }
            observe(x)
        }
        return x
    }

    /// The pooler on the first real token of every sequence: [B, H] (zeros for empty sequences).
    func runPooler(_ pooler: BertPooler, _ packed: PackedBatch, hidden x: UnsafeMutablePointer<Float>,
                   parameters p: ParameterStore, workspace: Workspace) -> [Float] {
        let h = config.hiddenSize, b = packed.batchSize
        var first = [Float](repeating: 0, count: b * h)
        var result = [Float](repeating: 0, count: b * h)
        for s in 0..<b where packed.sequenceLength[s] > 0 {
            let row = x + packed.sequenceStart[s] * h
            for j in 0..<h { first[s * h + j] = row[j] }
        }
        first.withUnsafeBufferPointer { inp in
            result.withUnsafeMutableBufferPointer { out in
                BLAS.parallelSgemm(transB: true, m: b, n: h, k: h, a: inp.baseAddress!, lda: h,
                                   b: p[pooler.dense.weight], ldb: h, c: out.baseAddress!, ldc: h)
                Kernels.biasTanh(out.baseAddress!, bias: p[pooler.dense.bias], output: out.baseAddress!, cols: h, rows: 0..<b)
            }
        }
        for s in 0..<b where packed.sequenceLength[s] == 0 {
            for j in 0..<h { result[s * h + j] = 0 }
        }
        return result
    }
}

/// Query rows per attention work item (see runEncoder): BERT's whole sequences. Smaller blocks
/// (32–128 rows, to keep scores in L2) measured 4–10% slower at 8x512: K is then packed once per
/// block.
let attentionBlockRows = 512

/// How many row blocks to split `rows` rows into: one per thread, but not below ~8 rows each.
@inline(__always)
func rowParts(_ rows: Int, _ threads: Int) -> Int { max(1, min(threads, rows / 8)) }

/// out[M, N] = input[M, K] · weight[N, K]ᵀ + bias, then `epilogue(rows)` on the finished rows. The
/// bias is written first and the product accumulated onto it (BLAS with beta = 1 skips its own pass
/// over C). With many rows each thread multiplies its own row block and runs the epilogue on it
/// while it is in cache; with fewer, the threads split the weight's rows instead (BLAS packs the
/// weights on every call, and a row split would have every thread pack and stream all of them).
func linear(_ input: UnsafePointer<Float>, rows m: Int, inFeatures k: Int, weight: UnsafePointer<Float>,
            outFeatures n: Int, bias: UnsafePointer<Float>, output: UnsafeMutablePointer<Float>,
            packed: PackedWeights? = nil, epilogue: (Range<Int>) -> Void) {
    let threads = Compute.threads
    nonisolated(unsafe) let input = input, weight = weight, output = output, bias = bias
    if let packed, m > BLAS.smallRowLimit && m <= BLAS.packedRowLimit * threads {
        // Weights packed ahead of time (inference): rows split over the threads when there are
        // many, else the weights' panels. Past packedRowLimit rows a thread, BLAS's own packing
        // is amortised and its kernel is as fast as ours.
        precondition(packed.n == n && packed.k == k, "packed weights of \(packed.n)x\(packed.k) for a \(n)x\(k) product")
        let panels = n / PackedWeights.panelWidth
        if threads > 1 && m >= 256 * threads {
            Compute.parallelRanges(m, parts: threads, granularity: 6) { rows in
                BLAS.packedGemmNT(a: input, lda: k, w: packed, bias: bias, c: output, ldc: n, rows: rows, panels: 0..<panels)
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
            BLAS.sgemm(transB: true, m: rows.count, n: n, k: k, a: input + rows.lowerBound * k, lda: k,
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
        BLAS.parallelSgemm(transB: true, m: m, n: n, k: k, a: input, lda: k, b: weight, ldb: k, beta: 1, c: output, ldc: n)
        Compute.parallelRanges(m, parts: rowParts(m, threads)) { epilogue($0) }
    }
}

/// The real tokens of a batch, packed: token t came from flat position origin[t] = b·S + p.
struct PackedBatch {
    let batchSize: Int
    let paddedLength: Int  // S of the padded batch
    var ids: [Int32] = []
    var types: [Int32] = []
    var positions: [Int32] = []
    var origin: [Int] = []
    /// Per batch row: where its tokens start in the packed order, and how many there are.
    var sequenceStart: [Int] = []
    var sequenceLength: [Int] = []

    init(batchSize: Int, sequenceLength: Int) {
        self.batchSize = batchSize
        self.paddedLength = sequenceLength
    }

    var tokenCount: Int { ids.count }

    /// Scatters packed rows [T, cols] back to a zero-padded [B, S, cols] array.
    func unpack(_ x: UnsafePointer<Float>, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: batchSize * paddedLength * cols)
        out.withUnsafeMutableBufferPointer { dst in
            for (t, flat) in origin.enumerated() {
                (dst.baseAddress! + flat * cols).update(from: x + t * cols, count: cols)
            }
        }
        return out
    }
}
