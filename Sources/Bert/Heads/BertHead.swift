import BertCompute
import Foundation

/// A BERT encoder with a task head in one parameter block, as transformers' BertFor* models:
/// the encoder's tensors under "bert.", the head's beside them. Every head runs its inference
/// through the encoder's fast forward (`encoderModel`) and its training through the one
/// forward/backward pair of the modules.
public protocol BertHead: AnyObject, Sendable {
    /// The model's configuration, written as config.json by `save(to:)`.
    var config: BertConfig { get }
    /// The encoder's modules inside `parameters`.
    var bert: BertModelWeights { get }
    /// Every tensor of the model, encoder and head, in one block.
    var parameters: ParameterStore { get }
    /// The encoder over this head's parameter block: its inference forward (packed weights,
    /// fused attention) is the one `bert embed` uses.
    var encoderModel: BertModel { get }
    /// Loads a folder of this head (saved here or by transformers).
    init(folder: URL) throws
    /// Writes config.json and model.safetensors.
    func save(to folder: URL) throws
}

/// A fine-tuning head, as every task runner and predictor sees it: made on a pretrained encoder,
/// its output for a batch (dropout off, through the encoder's fast forward), and the loss of that
/// output against the task's targets with every parameter's gradient (the one training forward and
/// its backward). Sequence and token classification, question answering and multiple choice are
/// task heads; pretraining's head has its own batch (masked positions) and loss.
public protocol TaskHead: BertHead {
    /// What the head needs besides the encoder (label names, the task; `Void` when nothing).
    associatedtype Settings
    /// What it computes for a batch: logits, span logits, choice scores.
    associatedtype Output
    /// What the loss compares with: class ids or values, tag ids, answer spans, right choices.
    associatedtype Targets

    /// A new head on a pretrained encoder's folder (BertModel, BertForPreTraining,
    /// sentence-transformers or another BertFor*): the encoder's tensors loaded, the head (and a
    /// pooler the checkpoint lacks) initialised as BERT does. Returns the newly initialised names.
    static func fromPretrained(folder: URL, settings: Settings, seed: UInt64) throws -> (
        model: Self, initialised: [String]
    )
    /// The head's output with dropout off.
    func logits(_ batch: EncoderBatch) throws -> Output
    /// Forward and backward of one batch: the mean loss, its gradients added into `grads`.
    func lossAndGradients(_ batch: EncoderBatch, targets: Targets, into grads: ParameterStore, dropout: Dropout?)
        throws -> Double
}

extension TaskHead where Settings == Void {
    /// `fromPretrained(folder:settings:seed:)` for a head with no settings of its own.
    public static func fromPretrained(folder: URL, seed: UInt64) throws -> (model: Self, initialised: [String]) {
        try fromPretrained(folder: folder, settings: (), seed: seed)
    }
}

extension BertHead {
    /// Packs the encoder's weights for inference (see `BertModel.prepareForInference`).
    public func prepareForInference(always: Bool = false, precision: Precision = .fp32) {
        encoderModel.prepareForInference(always: always, precision: precision)
    }

    /// Writes config.json (its architectures naming the head) and model.safetensors.
    public func save(to folder: URL) throws { try writeModelFolder(config: config, parameters: parameters, to: folder) }

    /// A zeroed gradient block with the parameters' layout.
    public func makeGradients() throws -> ParameterStore { try ParameterStore(layout: parameters.layout) }
}

/// Fills a task model's parameters: BERT's initialisation everywhere, then every "bert." tensor
/// from a pretrained checkpoint (with or without the prefix; a pooler it lacks stays initialised).
/// Returns the names of the tensors that were not in the checkpoint.
func loadPretrainedEncoder(_ parameters: ParameterStore, config: BertConfig, file: SafeTensorsFile, seed: UInt64) throws
    -> [String]
{
    var rng = SeededRandom(seed: seed)
    initializeBertParameters(parameters, config: config, rng: &rng)
    guard
        file.info("bert.embeddings.word_embeddings.weight") != nil
            || file.info("embeddings.word_embeddings.weight") != nil
    else {
        throw BertError.wrongModel(
            path: file.name,
            reason:
                "no BERT embeddings (expected 'embeddings.word_embeddings.weight' or "
                + "'bert.embeddings.word_embeddings.weight')"
        )
    }
    let prefix = file.info("bert.embeddings.word_embeddings.weight") != nil ? "bert." : ""
    var initialised: [String] = []
    for t in parameters.layout.tensors {
        guard t.name.hasPrefix("bert.") else { initialised.append(t.name); continue }
        if t.name.hasPrefix("bert.pooler.") && file.info(prefix + t.name.dropFirst("bert.".count)) == nil {
            initialised.append(t.name)
            continue
        }
        let found = try parameters.layout.checkpointName(of: t, in: file, stripping: "bert.", adding: prefix)
        do {
            try file.copyFloats(found, into: UnsafeMutableBufferPointer(start: parameters[t], count: t.count))
        } catch let e as SafeTensorsError {
            throw BertError.malformedFile(path: e.file, reason: e.message)
        }
    }
    return initialised
}

/// The label names of a task config (id2label in id order).
func labelList(_ config: BertConfig, folder: URL) throws -> [String] {
    guard let id2label = config.extra["id2label"] as? [String: Any], !id2label.isEmpty else {
        throw BertError.invalidConfig(source: "\(folder.path)/config.json", reason: "no id2label")
    }
    return try (0..<id2label.count).map { i in
        guard let name = id2label[String(i)] else {
            throw BertError.invalidConfig(source: "\(folder.path)/config.json", reason: "id2label has no id \(i)")
        }
        return "\(name)"
    }
}

extension BertConfig {
    /// The dropout probability of a head's classifier input during training with `dropout`:
    /// config.json's classifier_dropout when set, else the hidden-dropout probability, as
    /// transformers; nil when that is 0 (no mask to draw).
    func classifierDropout(during dropout: Dropout) -> Float? {
        let p = (extra["classifier_dropout"] as? NSNumber).map { Float(truncating: $0) } ?? dropout.hiddenProbability
        return p > 0 ? p : nil
    }
}
