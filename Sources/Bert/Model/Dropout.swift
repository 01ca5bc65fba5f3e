import BertCompute

/// Dropout in training mode, as BERT places it: after the embeddings' LayerNorm, on the attention
/// probabilities, and on each sub-layer's output before the residual. Masks are functions of
/// `seed` (and of the layer, site and item), so a step can be replayed exactly.
public struct Dropout: Sendable, Equatable {
    /// Probability, in [0, 1), of zeroing each value after the embeddings and each
    /// sub-layer; 0 turns that dropout off.
    public var hiddenProbability: Float
    /// Probability, in [0, 1), of zeroing each attention probability; 0 turns that dropout off.
    public var attentionProbability: Float
    /// What every mask derives from, together with its site's stream.
    public var seed: UInt64
    /// The place in its micro-batch of the batch's first row (the rows before it are another
    /// rank's share); sequence b draws the masks of sequence `firstSequence + b`.
    public var firstSequence: Int
    /// Each batch row's sequence number, when the rows are not consecutive sequences (multiple
    /// choice numbers a question's endings question × 64 + ending); nil: `firstSequence + b`.
    public var sequenceNumbers: [Int]? = nil
    /// Dropout at these probabilities (each in [0, 1)) with masks drawn from `seed`, for a batch
    /// whose first row is sequence `firstSequence` of its micro-batch.
    public init(hiddenProbability: Float, attentionProbability: Float, seed: UInt64, firstSequence: Int = 0) {
        self.hiddenProbability = hiddenProbability
        self.attentionProbability = attentionProbability
        self.seed = seed
        self.firstSequence = firstSequence
    }

    /// The same dropout for the rows from sequence `offset` of this batch on (a rank's share).
    public func startingAt(sequence offset: Int) -> Dropout {
        var d = self
        d.firstSequence += offset
        return d
    }

    /// Whether any site drops anything.
    var isActive: Bool { hiddenProbability > 0 || attentionProbability > 0 }

    /// A mask of `count` values: 0 with probability p, else 1/(1 − p).
    public func mask(_ out: UnsafeMutablePointer<Float>, count: Int, probability p: Float, stream: UInt64) {
        var rng = SeededRandom(seed: seed ^ (stream &* 0x9E37_79B9_7F4A_7C15))
        let keep = 1 / (1 - p)
        for i in 0..<count { out[i] = rng.nextUnitFloat() < p ? 0 : keep }
    }

    /// The sequence number of batch row `b`: its masks' stream.
    func sequence(_ b: Int) -> Int { sequenceNumbers?[b] ?? firstSequence + b }

    /// Masks of `cols` values per row for rows packed sequence after sequence (row `starts[b]` on,
    /// `lengths[b]` rows for batch row b): each sequence's from its own stream.
    func sequenceMasks(
        _ out: UnsafeMutablePointer<Float>, starts: [Int], lengths: [Int], cols: Int, probability p: Float,
        stream: UInt64
    ) {
        for b in starts.indices {
            mask(
                out + starts[b] * cols, count: lengths[b] * cols, probability: p,
                stream: Self.sequenceStream(stream, sequence: sequence(b)))
        }
    }

    /// A hidden-dropout mask of `cols` values per real token, or an empty buffer when that
    /// probability is 0.
    func hiddenMask(tokens: RealTokens, cols: Int, stream: UInt64) -> FloatBuffer {
        guard hiddenProbability > 0 else { return noMask }
        let m = FloatBuffer(count: tokens.tokenCount * cols)
        sequenceMasks(
            m.pointer, starts: tokens.sequenceStart, lengths: tokens.sequenceLength, cols: cols,
            probability: hiddenProbability, stream: stream)
        return m
    }

    /// The stream of sequence `s` at a site.
    static func sequenceStream(_ stream: UInt64, sequence s: Int) -> UInt64 {
        stream &+ UInt64(s + 1) &* 0xD6E8_FEB8_6659_FD93
    }

    // The streams of each site: fixed, so that a step replays exactly and a resumed run draws the
    // masks it would have drawn.
    static let embeddingStream: UInt64 = 1
    static func attentionOutputStream(layer l: Int) -> UInt64 { UInt64(100 + 3 * l) }
    static func outputStream(layer l: Int) -> UInt64 { UInt64(101 + 3 * l) }
    /// item = sequence · heads + head, the sequence's place in the micro-batch.
    static func probabilityStream(layer l: Int, item: Int) -> UInt64 { UInt64(1_000_000 + l * 100_000 + item) }
    /// The classifier dropout of a pooled head (sequence classification, multiple choice).
    static let classifierStream: UInt64 = 0xC1A5_51F1
    /// The classifier dropout of token classification (one mask row per token).
    static let tokenClassifierStream: UInt64 = 0x7A66_E201
}

/// The empty mask: dropout off at a site (one shared buffer, so a forward allocates none).
let noMask = FloatBuffer(count: 0)

/// x ⊙= mask on the given rows of `cols` values (an empty mask, dropout off, leaves x alone). The
/// forward applies it to an output, the backward to that output's gradient.
func applyMask(_ mask: FloatBuffer, to x: UnsafeMutablePointer<Float>, cols: Int, rows: Range<Int>) {
    if mask.count == 0 { return }
    for i in (rows.lowerBound * cols)..<(rows.upperBound * cols) { x[i] *= mask.pointer[i] }
}

/// x ⊙= mask over the whole mask.
func applyMask(_ mask: FloatBuffer, to x: UnsafeMutablePointer<Float>) {
    for i in 0..<mask.count { x[i] *= mask.pointer[i] }
}
