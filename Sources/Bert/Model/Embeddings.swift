import BertCompute

/// transformers' BertEmbeddings: word + position + token type embeddings, LayerNorm, dropout.
public struct BertEmbeddings: Sendable {
    /// [vocab_size, hidden_size]: one row per token id.
    public let wordEmbeddings: TensorRef
    /// [max_position_embeddings, hidden_size]: one row per position.
    public let positionEmbeddings: TensorRef
    /// [type_vocab_size, hidden_size]: one row per token type (segment).
    public let tokenTypeEmbeddings: TensorRef
    /// The LayerNorm over the sum of the three embeddings.
    public let layerNorm: LayerNorm

    init(_ layout: inout ParameterLayout, _ prefix: String, _ c: BertConfig) {
        wordEmbeddings = layout.add(prefix + ".word_embeddings.weight", [c.vocabSize, c.hiddenSize])
        positionEmbeddings = layout.add(
            prefix + ".position_embeddings.weight", [c.maxPositionEmbeddings, c.hiddenSize])
        tokenTypeEmbeddings = layout.add(prefix + ".token_type_embeddings.weight", [c.typeVocabSize, c.hiddenSize])
        layerNorm = LayerNorm(&layout, prefix + ".LayerNorm", size: c.hiddenSize)
    }

    var hiddenSize: Int { wordEmbeddings.shape[1] }

    /// sum = the three embeddings of every token, output = LayerNorm(sum) ⊙ mask. `sum` may equal
    /// `output` (inference); `statistics` are kept for the backward (training).
    func forward(
        _ tokens: RealTokens, sum: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
        eps: Float, parameters p: ParameterStore, statistics: RowStatistics? = nil,
        mask: FloatBuffer = noMask
    ) {
        let t = tokens.tokenCount, h = hiddenSize
        nonisolated(unsafe) let sum = sum, output = output
        // A word table held in int8 or bf16 (a quantized folder's) is gathered from as it is: the
        // same values as its widened floats, at a quarter or half of the memory.
        p.withHeldRows(wordEmbeddings) { held in
            nonisolated(unsafe) let held = held
            nonisolated(unsafe) let words = held == nil ? p[wordEmbeddings] : nil
            nonisolated(unsafe) let positions = p[positionEmbeddings], types = p[tokenTypeEmbeddings]
            tokens.ids.withUnsafeBufferPointer { ids in
                tokens.positions.withUnsafeBufferPointer { pos in
                    tokens.types.withUnsafeBufferPointer { tt in
                        nonisolated(unsafe) let ids = ids.baseAddress!, pos = pos.baseAddress!, tt = tt.baseAddress!
                        Compute.parallelRanges(t, parts: rowParts(t, Compute.threads)) { rows in
                            switch held {
                            case nil:
                                Kernels.gatherSum3(
                                    sum, cols: h, rows: rows, a: words!, ia: ids, b: positions, ib: pos, c: types,
                                    ic: tt)
                            case .int8(let q, let scales)?:
                                Kernels.gatherSum3(
                                    sum, cols: h, rows: rows, int8: q, scales: scales, ia: ids, b: positions, ib: pos,
                                    c: types, ic: tt)
                            case .bf16(let bits)?:
                                Kernels.gatherSum3(
                                    sum, cols: h, rows: rows, bf16: bits, ia: ids, b: positions, ib: pos, c: types,
                                    ic: tt)
                            }
                            layerNorm.forward(
                                sum, output: output, rows: rows, eps: eps, parameters: p, statistics: statistics)
                            applyMask(mask, to: output, cols: h, rows: rows)
                        }
                    }
                }
            }
        }
    }

    /// The backward of `forward`: dy (the output's gradient, overwritten) through the mask and the
    /// LayerNorm into the rows of the three tables.
    func backward(
        _ dy: UnsafeMutablePointer<Float>, sum: UnsafePointer<Float>, statistics: RowStatistics,
        mask: FloatBuffer, tokens: RealTokens, scratch: UnsafeMutablePointer<Float>,
        parameters p: ParameterStore, gradients g: ParameterStore
    ) {
        let t = tokens.tokenCount, h = hiddenSize
        applyMask(mask, to: dy)
        layerNorm.backward(
            dy, input: sum, statistics: statistics, inputGradient: scratch, rows: t, parameters: p, gradients: g)
        for (indices, table) in [
            (tokens.ids, wordEmbeddings), (tokens.positions, positionEmbeddings),
            (tokens.types, tokenTypeEmbeddings),
        ] {
            indices.withUnsafeBufferPointer {
                Kernels.embeddingBackward(dy: scratch, ids: $0.baseAddress!, dtable: g[table], cols: h, rows: 0..<t)
            }
        }
    }
}
