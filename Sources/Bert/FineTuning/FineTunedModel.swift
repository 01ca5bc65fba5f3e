import BertTokenizer
import Foundation

/// The architecture a model folder's config.json names (its first `architectures` entry);
/// "BertModel" when it names none. A folder without a readable config.json is an error.
public func modelArchitecture(folder: URL) throws -> String {
    let url = folder.appendingPathComponent("config.json")
    guard let data = try? Data(contentsOf: url),
        let object = try? JSONSerialization.jsonObject(with: droppingByteOrderMark(data)) as? [String: Any]
    else {
        throw BertError.fileAccess(path: url.path, reason: "missing or not JSON (is this a model folder?)")
    }
    return (object["architectures"] as? [String])?.first ?? "BertModel"
}

/// A fine-tuned model folder, opened as the head its config.json names, with its tokenizer, its
/// encoder prepared for inference (the fast path `bert embed` takes) and inputs truncated to
/// `maxLength` tokens when given (never past the model's positions). `bert predict`, `bert
/// evaluate` and `bert serve` open folders through it.
public enum FineTunedModel {
    /// A sequence classifier or regressor (BertForSequenceClassification; the default).
    case sequence(SequenceFineTuner)
    /// A token classifier (BertForTokenClassification).
    case tagger(TokenTagger)
    /// An extractive question answerer (BertForQuestionAnswering), with its qa_settings.json.
    case answerer(QuestionAnswerer)
    /// A multiple-choice model (BertForMultipleChoice).
    case solver(ChoiceSolver)

    /// Opens `folder`; `maxLength` (at least 4: room for [CLS], [SEP] twice and a token of text)
    /// caps the tokens of an input; `precision` is the encoder's matrix products' (see
    /// `BertModel.prepareForInference(always:precision:)`).
    public init(folder: URL, maxLength: Int? = nil, precision: Precision = .fp32) throws {
        if let m = maxLength, m < 4 { throw BertError.invalidInput("--max-length must be at least 4, got \(m)") }
        let kind = try modelArchitecture(folder: folder)
        let tokenizer = try BertTokenizer(modelFolder: folder)
        func options(_ config: BertConfig) -> FineTuneOptions {
            var options = FineTuneOptions()
            options.maxLength = min(maxLength ?? config.maxPositionEmbeddings, config.maxPositionEmbeddings)
            return options
        }
        switch kind {
        case "BertForTokenClassification":
            let network = try BertForTokenClassification(folder: folder)
            network.prepareForInference(precision: precision)
            self = .tagger(TokenTagger(model: network, tokenizer: tokenizer, options: options(network.config)))
        case "BertForQuestionAnswering":
            let network = try BertForQuestionAnswering(folder: folder)
            network.prepareForInference(precision: precision)
            var qa = try QAOptions(folder: folder)
            if let m = maxLength { qa.maxLength = m }
            qa.maxLength = min(qa.maxLength, network.config.maxPositionEmbeddings)
            self = .answerer(QuestionAnswerer(model: network, tokenizer: tokenizer, options: FineTuneOptions(), qa: qa))
        case "BertForMultipleChoice":
            let network = try BertForMultipleChoice(folder: folder)
            network.prepareForInference(precision: precision)
            self = .solver(ChoiceSolver(model: network, tokenizer: tokenizer, options: options(network.config)))
        default:
            let network = try BertForSequenceClassification(folder: folder)
            network.prepareForInference(precision: precision)
            self = .sequence(SequenceFineTuner(model: network, tokenizer: tokenizer, options: options(network.config)))
        }
    }
}
