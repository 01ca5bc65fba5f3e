import Foundation

/// A padded batch of token sequences, as transformers' BertModel takes it ([B, S] each, row-major).
public struct EncoderBatch: Sendable {
    /// B: sequences in the batch.
    public var batchSize: Int
    /// S: tokens per row, padding included.
    public var sequenceLength: Int
    /// Token ids, [B, S].
    public var inputIds: [Int32]
    /// nil means all zeros (segment A).
    public var tokenTypeIds: [Int32]?
    /// 1 for real tokens, 0 for padding; nil means all ones. Any pattern works (right or left padding).
    public var attentionMask: [Int32]?
    /// nil means 0..<S on every row, as transformers (also with left padding).
    public var positionIds: [Int32]?

    /// A batch of flat [B, S] arrays; sizes and ids are checked against the model when it runs.
    public init(
        batchSize: Int, sequenceLength: Int, inputIds: [Int32], tokenTypeIds: [Int32]? = nil,
        attentionMask: [Int32]? = nil, positionIds: [Int32]? = nil
    ) {
        self.batchSize = batchSize
        self.sequenceLength = sequenceLength
        self.inputIds = inputIds
        self.tokenTypeIds = tokenTypeIds
        self.attentionMask = attentionMask
        self.positionIds = positionIds
    }

    /// Right-pads ragged sequences to the longest one: the one batch builder of the project
    /// (fine-tuning, QA windows, tagging, pretraining instances, fill-mask). `tokenTypeIds` (one
    /// row per sequence, as long as it) nil means all zeros.
    public static func padded(_ sequences: [[Int32]], tokenTypeIds: [[Int32]]? = nil, padId: Int32 = 0) -> EncoderBatch
    {
        precondition(tokenTypeIds == nil || tokenTypeIds!.count == sequences.count, "one token type row per sequence")
        let s = sequences.map(\.count).max() ?? 0
        var mask = [Int32](repeating: 0, count: sequences.count * s)
        for (b, seq) in sequences.enumerated() {
            mask.replaceSubrange(b * s..<(b * s + seq.count), with: repeatElement(1, count: seq.count))
        }
        return EncoderBatch(
            batchSize: sequences.count, sequenceLength: s, inputIds: padRows(sequences, width: s, fill: padId),
            tokenTypeIds: tokenTypeIds.map { padRows($0, width: s, fill: 0) }, attentionMask: mask)
    }

    /// Rows laid out [rows.count, width], each right-filled with `fill` (labels beside a padded
    /// batch: −100 where no loss is taken).
    public static func padRows(_ rows: [[Int32]], width: Int, fill: Int32) -> [Int32] {
        var out = [Int32](repeating: fill, count: rows.count * width)
        for (b, row) in rows.enumerated() {
            precondition(row.count <= width, "a row longer than the batch")
            out.replaceSubrange(b * width..<(b * width + row.count), with: row)
        }
        return out
    }
}

/// The real tokens of a batch, without padding: token t came from flat position origin[t] = b·S + p.
struct RealTokens {
    let batchSize: Int
    let paddedLength: Int  // S of the padded batch
    var ids: [Int32] = []
    var types: [Int32] = []
    var positions: [Int32] = []
    var origin: [Int] = []
    /// Per batch row: where its tokens start in the token order, and how many there are.
    var sequenceStart: [Int] = []
    var sequenceLength: [Int] = []

    init(batchSize: Int, sequenceLength: Int) {
        self.batchSize = batchSize
        self.paddedLength = sequenceLength
    }

    var tokenCount: Int { ids.count }

    /// Scatters token rows [T, cols] back to a zero-padded [B, S, cols] array.
    func unpack(_ x: UnsafePointer<Float>, cols: Int) -> [Float] {
        var out = [Float](repeating: 0, count: batchSize * paddedLength * cols)
        out.withUnsafeMutableBufferPointer { dst in
            for (t, flat) in origin.enumerated() {
                (dst.baseAddress! + flat * cols).update(from: x + t * cols, count: cols)
            }
        }
        return out
    }

    /// Checks the batch against the model, and gathers the real (unmasked) tokens of every
    /// sequence contiguously: all per-token work then skips padding entirely.
    init(_ batch: EncoderBatch, config: BertConfig) throws {
        let b = batch.batchSize, s = batch.sequenceLength
        guard b >= 0, s >= 0 else {
            throw BertError.invalidInput("batch size and sequence length must not be negative")
        }
        let (n, overflow) = b.multipliedReportingOverflow(by: s)
        guard !overflow else { throw BertError.invalidInput("batch size \(b) × sequence length \(s) is too large") }
        guard batch.inputIds.count == n else {
            throw BertError.invalidInput(
                "input_ids has \(batch.inputIds.count) values, expected batch \(b) × length \(s) = \(n)")
        }
        if let t = batch.tokenTypeIds, t.count != n {
            throw BertError.invalidInput("token_type_ids has \(t.count) values, expected \(n)")
        }
        if let m = batch.attentionMask, m.count != n {
            throw BertError.invalidInput("attention_mask has \(m.count) values, expected \(n)")
        }
        if let p = batch.positionIds, p.count != n {
            throw BertError.invalidInput("position_ids has \(p.count) values, expected \(n)")
        }
        if batch.positionIds == nil && s > config.maxPositionEmbeddings {
            throw BertError.invalidInput(
                "sequence length \(s) is longer than max_position_embeddings \(config.maxPositionEmbeddings); "
                    + "truncate the input"
            )
        }
        var packed = RealTokens(batchSize: b, sequenceLength: s)
        packed.ids.reserveCapacity(n)
        for bi in 0..<b {
            let start = packed.ids.count
            for p in 0..<s {
                let i = bi * s + p
                if let m = batch.attentionMask, m[i] == 0 { continue }
                let id = batch.inputIds[i]
                guard id >= 0 && Int(id) < config.vocabSize else {
                    throw BertError.invalidInput(
                        "input id \(id) at batch \(bi), position \(p) is outside the vocabulary (size "
                            + "\(config.vocabSize))"
                    )
                }
                let type = batch.tokenTypeIds?[i] ?? 0
                guard type >= 0 && Int(type) < config.typeVocabSize else {
                    throw BertError.invalidInput(
                        "token type id \(type) at batch \(bi), position \(p) is outside type_vocab_size "
                            + "\(config.typeVocabSize)"
                    )
                }
                let pos = batch.positionIds?[i] ?? Int32(p)
                guard pos >= 0 && Int(pos) < config.maxPositionEmbeddings else {
                    throw BertError.invalidInput(
                        "position id \(pos) at batch \(bi), position \(p) is outside max_position_embeddings "
                            + "\(config.maxPositionEmbeddings)"
                    )
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
        self = packed
    }
}
