import BertCompute
import Foundation

/// Transformers' BertForQuestionAnswering: the encoder ("bert.", no pooler) and "qa_outputs", a
/// linear layer giving each token a start and an end logit.
public final class BertForQuestionAnswering: TaskHead, @unchecked Sendable {
    /// The encoder's configuration, architectures ["BertForQuestionAnswering"] and no labels.
    public let config: BertConfig
    public let bert: BertModelWeights
    /// The "qa_outputs" layer: each token's hidden state [H] to its start and end logits.
    public let qaOutputs: Linear
    /// The encoder's and qa_outputs' tensors in one block.
    public let parameters: ParameterStore
    public let encoderModel: BertModel

    /// A model of `config` with every parameter zero (load or initialise them next).
    public init(config: BertConfig) throws {
        try config.validate()
        var c = config
        c.architectures = ["BertForQuestionAnswering"]
        for k in ["id2label", "label2id", "problem_type"] { c.extra.removeValue(forKey: k) }
        self.config = c
        var layout = ParameterLayout()
        bert = BertModelWeights(&layout, config: config, prefix: "bert.", addPoolingLayer: false)
        qaOutputs = Linear(&layout, "qa_outputs", out: 2, in: config.hiddenSize)
        parameters = try ParameterStore(layout: layout)
        encoderModel = BertModel(weights: bert, parameters: parameters)
    }

    public static func fromPretrained(folder: URL, settings: Void, seed: UInt64) throws -> (
        model: BertForQuestionAnswering, initialised: [String]
    ) {
        let (config, file) = try openCheckpoint(folder)
        let model = try BertForQuestionAnswering(config: config)
        return (model, try loadPretrainedEncoder(model.parameters, config: config, file: file, seed: seed))
    }

    public convenience init(folder: URL) throws {
        let (config, file) = try openCheckpoint(folder)
        guard file.info("qa_outputs.weight") != nil else {
            throw BertError.wrongModel(
                path: folder.path, reason: "no qa_outputs.weight (not a BertForQuestionAnswering; fine-tune it first)")
        }
        try self.init(config: config)
        try parameters.layout.check(against: file)
        try parameters.load(from: file)
    }

    /// Start and end logits, each [batch × sequence] (−∞ at padding, which is never an answer).
    public func logits(_ batch: EncoderBatch) throws -> (start: [Float], end: [Float]) {
        try encoderModel.withHiddenStates(batch) { tokens, hidden, _ in
            let t = tokens.tokenCount
            let out = FloatBuffer(count: max(1, 2 * t))
            qaOutputs.forward(hidden, rows: t, output: out.pointer, parameters: parameters)
            var start = [Float](repeating: -.infinity, count: batch.batchSize * batch.sequenceLength), end = start
            for (row, flat) in tokens.origin.enumerated() {
                start[flat] = out.pointer[2 * row]
                end[flat] = out.pointer[2 * row + 1]
            }
            return (start, end)
        }
    }

    /// Forward and backward of one batch with start and end positions per row (positions within
    /// the row; softmax over its real tokens): loss = (CE(start) + CE(end)) / 2, averaged over rows.
    /// transformers' BertForQuestionAnswering takes the softmax over the padded row, padding
    /// included, so its loss depends on how the batch was padded; without padding the two agree.
    public func lossAndGradients(
        _ batch: EncoderBatch, starts: [Int], ends: [Int], into grads: ParameterStore,
        dropout: Dropout? = nil
    ) throws -> Double {
        let b = batch.batchSize, s = batch.sequenceLength, h = config.hiddenSize
        guard starts.count == b, ends.count == b else {
            throw BertError.invalidInput("question answering needs a start and an end per row")
        }
        let mask = batch.attentionMask ?? [Int32](repeating: 1, count: b * s)
        for r in 0..<b {
            for p in [starts[r], ends[r]] where !(0..<s).contains(p) || mask[r * s + p] == 0 {
                throw BertError.invalidInput("answer position \(p) of row \(r) is outside its tokens")
            }
        }
        let p = parameters
        let acts = try bert.forwardForTraining(batch, parameters: p, dropout: dropout)
        let packed = acts.tokens, t = packed.tokenCount
        let x = FloatBuffer(count: t * h)
        x.pointer.update(from: acts.output.pointer, count: t * h)
        let logits = FloatBuffer(count: 2 * t)
        qaOutputs.forward(x.pointer, rows: t, output: logits.pointer, parameters: p)
        // Softmax cross-entropy along each row's tokens, for the start and the end column.
        let dLogits = FloatBuffer(count: 2 * t)
        dLogits.zero()
        var loss = 0.0
        let rowLogits = FloatBuffer(count: max(1, packed.sequenceLength.max() ?? 0))
        for r in 0..<b {
            let first = packed.sequenceStart[r], n = packed.sequenceLength[r]
            // The packed row of position p in sequence r: real tokens are packed in order.
            var rowOf: [Int: Int] = [:]
            for k in 0..<n { rowOf[packed.origin[first + k] - r * s] = first + k }
            for (column, target) in [(0, starts[r]), (1, ends[r])] {
                guard let targetRow = rowOf[target] else {
                    throw BertError.invalidInput("answer position \(target) of row \(r) is padding")
                }
                // The column's logits over the row's tokens, through the one softmax cross-entropy.
                for k in 0..<n { rowLogits.pointer[k] = logits.pointer[2 * (first + k) + column] }
                var label = Int32(targetRow - first)
                loss += Kernels.crossEntropy(
                    rowLogits.pointer, labels: &label, cols: n, rows: 0..<1, scale: 1 / Float(2 * b))
                for k in 0..<n { dLogits.pointer[2 * (first + k) + column] = rowLogits.pointer[k] }
            }
        }
        let dx = FloatBuffer(count: t * h)
        qaOutputs.backward(
            dLogits.pointer, input: x.pointer, rows: t, inputGradient: dx.pointer, parameters: p,
            gradients: grads)
        var dHidden = [Float](repeating: 0, count: b * s * h)
        for (row, flat) in packed.origin.enumerated() {
            for j in 0..<h { dHidden[flat * h + j] = dx.pointer[row * h + j] }
        }
        bert.backward(acts, dHidden: dHidden, dPooled: nil, parameters: p, gradients: grads)
        return loss / Double(2 * b)
    }
}

// MARK: SQuAD data

/// The answer span of each row of a batch (token positions within the row).
public struct AnswerSpans: Sendable {
    /// Position of the answer's first token in each row.
    public var starts: [Int]
    /// Position of the answer's last token (inclusive) in each row.
    public var ends: [Int]
    /// Spans from a start and an end per row.
    public init(starts: [Int], ends: [Int]) {
        self.starts = starts
        self.ends = ends
    }
}

extension BertForQuestionAnswering {
    public typealias Settings = Void
    public typealias Output = (start: [Float], end: [Float])

    public func lossAndGradients(
        _ batch: EncoderBatch, targets: AnswerSpans, into grads: ParameterStore, dropout: Dropout?
    ) throws -> Double {
        try lossAndGradients(batch, starts: targets.starts, ends: targets.ends, into: grads, dropout: dropout)
    }
}
