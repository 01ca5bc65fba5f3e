import Bert
import BertTokenizer
import Foundation

/// One input of a batch: a text to embed (already tokenized) or a text (pair) to classify.
enum Job: Sendable {
    case embed(Encoding)
    case classify(LabeledExample)
}

/// A model folder opened for serving. Its head decides its routes: an encoder or a
/// sentence-transformers folder embeds (`/embed`, `/v1/embeddings`); a sequence classifier
/// predicts (`/predict`), and reranks when it has one label (`/rerank`). Every model tokenizes.
final class ServedModel: @unchecked Sendable {
    enum Head {
        case embedder(SentenceEmbedder)
        case classifier(SequenceFineTuner)
    }

    let name: String
    let folder: URL
    let head: Head
    /// The folder's tokenizer without truncation or padding: inputs are counted as they are.
    let tokenizer: BertTokenizer
    /// The longest input, in tokens (the model's positions, or the folder's max_seq_length).
    let maxInputLength: Int
    let scheduler: BatchScheduler<Job, [Float]>

    init(name: String, folder: URL, maxBatchTokens: Int, maxQueued: Int) throws {
        self.name = name
        self.folder = folder
        let architecture = Self.architecture(folder)
        var tokenizer = try BertTokenizer(modelFolder: folder)
        tokenizer.padding = nil
        tokenizer.truncation = nil
        self.tokenizer = tokenizer
        let head: Head
        if architecture == "BertForSequenceClassification" {
            let network = try BertForSequenceClassification(folder: folder)
            network.prepareForInference()
            var options = FineTuneOptions()
            options.maxLength = network.config.maxPositionEmbeddings
            options.batchSize = 1 << 16
            head = .classifier(SequenceFineTuner(model: network, tokenizer: tokenizer, options: options))
            maxInputLength = options.maxLength
        } else {
            // Normalisation is applied per request (the folder's setting is the default).
            let embedder = try SentenceEmbedder(folder: folder, normalize: false, truncate: true)
            head = .embedder(embedder)
            maxInputLength = embedder.maxLength
        }
        self.head = head
        scheduler = BatchScheduler(maxBatchTokens: maxBatchTokens, maxQueued: maxQueued) { jobs in
            switch head {
            case .embedder(let embedder):
                let encodings = jobs.map { job -> Encoding in
                    guard case .embed(let e) = job else { preconditionFailure("a classify job for an embedder") }
                    return e
                }
                return try embedder.embed(encodings: encodings, batchSize: encodings.count)
            case .classifier(let tuner):
                let examples = jobs.map { job -> LabeledExample in
                    guard case .classify(let e) = job else { preconditionFailure("an embed job for a classifier") }
                    return e
                }
                return try tuner.logits(examples)
            }
        }
    }

    /// Whether the folder's sentence-transformers modules normalise (the default of `normalize`).
    lazy var normalizesByDefault: Bool = {
        (try? SentenceEmbeddingSettings(folder: folder).normalize) ?? false
    }()

    static func architecture(_ folder: URL) -> String {
        guard let data = try? Data(contentsOf: folder.appendingPathComponent("config.json")),
            let object = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any]
        else { return "BertModel" }
        return (object["architectures"] as? [String])?.first ?? "BertModel"
    }
}
