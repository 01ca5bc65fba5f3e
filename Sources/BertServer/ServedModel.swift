import Bert
import BertTokenizer
import Foundation

/// One input of a batch, tokenized by its request (off the compute thread).
enum Job: Sendable {
    /// A text to embed: its pooled vector.
    case embed(Encoding)
    /// A text whose every token's last hidden state is wanted (`/embed_all`).
    case tokenStates(Encoding)
    /// One input row of a head: a classifier's logits, a tagger's per-token logits, a question
    /// window's start then end logits.
    case row(ids: [Int32], typeIds: [Int32])
    /// A text with masks: the masked-LM probabilities at `positions`, one vocabulary row each.
    case fillMask(ids: [Int32], typeIds: [Int32], positions: [Int])

    var tokens: Int {
        switch self {
        case .embed(let e), .tokenStates(let e): return e.count
        case .row(let ids, _), .fillMask(let ids, _, _): return ids.count
        }
    }
}

/// What a served model answers, by route.
enum Route: String, CaseIterable, Sendable {
    case embed = "/embed"
    case embedAll = "/embed_all"
    case similarity = "/similarity"
    case openAIEmbeddings = "/v1/embeddings"
    case predict = "/predict"
    case rerank = "/rerank"
    case tag = "/tag"
    case answer = "/answer"
    case fillMask = "/fill-mask"
}

/// A model folder opened for serving. Its head decides its routes: an encoder or a
/// sentence-transformers folder embeds; a sequence classifier predicts (and reranks when it has
/// one label); a token classifier tags; a question-answering model answers; a pretraining
/// (masked-LM) folder fills masks and embeds with its encoder. Every model tokenizes.
final class ServedModel: @unchecked Sendable {
    enum Head {
        case embedder(SentenceEmbedder)
        case classifier(BertForSequenceClassification)
        case tagger(TokenTagger)
        case answerer(QuestionAnswerer)
        case maskedLM(BertForPreTraining, SentenceEmbedder)
    }

    let name: String
    let folder: URL
    let architecture: String
    let head: Head
    /// The folder's tokenizer without truncation or padding: inputs are counted as they are.
    let tokenizer: BertTokenizer
    /// The longest input, in tokens (the model's positions, or the folder's max_seq_length).
    let maxInputLength: Int
    let routes: Set<Route>
    let scheduler: BatchScheduler<Job, [Float]>

    init(
        name: String, folder: URL, maxBatchTokens: Int, maxQueued: Int, gate: ComputeGate, precision: Precision
    ) throws {
        self.name = name
        self.folder = folder
        architecture = try modelArchitecture(folder: folder)
        var tokenizer = try BertTokenizer(modelFolder: folder)
        tokenizer.padding = nil
        tokenizer.truncation = nil
        self.tokenizer = tokenizer
        let head: Head
        switch architecture {
        case "BertForSequenceClassification", "BertForTokenClassification", "BertForQuestionAnswering":
            switch try FineTunedModel(folder: folder, precision: precision) {
            case .sequence(let tuner):
                head = .classifier(tuner.model)
                maxInputLength = tuner.model.config.maxPositionEmbeddings
                routes = tuner.model.numLabels == 1 ? [.predict, .rerank] : [.predict]
            case .tagger(let tagger):
                head = .tagger(tagger)
                maxInputLength = tagger.options.maxLength
                routes = [.tag]
            case .answerer(let answerer):
                head = .answerer(answerer)
                maxInputLength = answerer.qa.maxLength
                routes = [.answer]
            case .solver:
                preconditionFailure("not a multiple-choice architecture")
            }
        case "BertForMultipleChoice":
            throw BertError.wrongModel(
                path: folder.path,
                reason: "bert serve has no route for a multiple-choice model (BertForMultipleChoice); "
                    + "use bert predict")
        case "BertForPreTraining", "BertForMaskedLM":
            let network = try BertForPreTraining(folder: folder)
            network.prepareForInference(precision: precision)
            let settings = try SentenceEmbeddingSettings(folder: folder)
            let embedder = try SentenceEmbedder(
                model: network.encoderModel, tokenizer: tokenizer, pooling: settings.pooling, normalize: false,
                maxLength: settings.maxSeqLength, truncate: true)
            head = .maskedLM(network, embedder)
            maxInputLength = network.config.maxPositionEmbeddings
            routes = [.fillMask, .embed, .embedAll, .similarity, .openAIEmbeddings]
        default:
            // Normalisation is applied per request (the folder's setting is the default).
            let embedder = try SentenceEmbedder(folder: folder, normalize: false, truncate: true, precision: precision)
            head = .embedder(embedder)
            maxInputLength = embedder.maxLength
            routes = [.embed, .embedAll, .similarity, .openAIEmbeddings]
        }
        self.head = head
        scheduler = BatchScheduler(maxBatchTokens: maxBatchTokens, maxQueued: maxQueued, gate: gate) { jobs in
            try Self.run(jobs, on: head)
        }
    }

    /// Whether the folder's sentence-transformers modules normalise (the default of `normalize`).
    lazy var normalizesByDefault: Bool = {
        (try? SentenceEmbeddingSettings(folder: folder).normalize) ?? false
    }()

    /// The embedder of an embedding or masked-LM folder.
    var embedder: SentenceEmbedder? { Self.embedderOf(head) }

    /// One batch of jobs on the compute thread: one output per job, in order.
    static func run(_ jobs: [Job], on head: Head) throws -> [[Float]] {
        var outputs = [[Float]](repeating: [], count: jobs.count)
        // Jobs of one kind run as one batch; a batch of mixed kinds (embed and embed_all of
        // concurrent requests) runs one batch per kind.
        var embeds: [Int] = [], states: [Int] = [], rows: [Int] = [], masks: [Int] = []
        for (i, job) in jobs.enumerated() {
            switch job {
            case .embed: embeds.append(i)
            case .tokenStates: states.append(i)
            case .row: rows.append(i)
            case .fillMask: masks.append(i)
            }
        }
        func encodings(_ indices: [Int]) -> [Encoding] {
            indices.map { i -> Encoding in
                switch jobs[i] {
                case .embed(let e), .tokenStates(let e): return e
                default: preconditionFailure("not an encoding job")
                }
            }
        }
        func rowBatch(_ indices: [Int]) -> EncoderBatch {
            let pairs = indices.map { i -> ([Int32], [Int32]) in
                switch jobs[i] {
                case .row(let ids, let typeIds), .fillMask(let ids, let typeIds, _): return (ids, typeIds)
                default: preconditionFailure("not a row job")
                }
            }
            return EncoderBatch.padded(pairs.map(\.0), tokenTypeIds: pairs.map(\.1))
        }
        func refuse(_ what: String) -> BertError { BertError.invalidInput("this model does not \(what)") }

        if !embeds.isEmpty || !states.isEmpty {
            guard case let embedder? = embedderOf(head) else { throw refuse("embed") }
            let all = embeds.count + states.count
            for (i, v) in zip(embeds, try embedder.embed(encodings: encodings(embeds), batchSize: all)) {
                outputs[i] = v
            }
            for (i, v) in zip(states, try embedder.tokenStates(encodings: encodings(states), batchSize: all)) {
                outputs[i] = v
            }
        }
        if !rows.isEmpty {
            let batch = rowBatch(rows)
            let s = batch.sequenceLength
            switch head {
            case .classifier(let network):
                let logits = try network.logits(batch), n = network.numLabels
                for (r, i) in rows.enumerated() { outputs[i] = Array(logits[r * n..<(r + 1) * n]) }
            case .tagger(let tagger):
                let logits = try tagger.model.logits(batch), n = tagger.model.numLabels
                for (r, i) in rows.enumerated() {
                    outputs[i] = Array(logits[r * s * n..<(r * s + jobs[i].tokens) * n])
                }
            case .answerer(let answerer):
                let (start, end) = try answerer.model.logits(batch)
                for (r, i) in rows.enumerated() {
                    let span = r * s..<(r * s + jobs[i].tokens)
                    outputs[i] = Array(start[span]) + Array(end[span])
                }
            default: throw refuse("take input rows")
            }
        }
        if !masks.isEmpty {
            guard case .maskedLM(let network, _) = head else { throw refuse("fill masks") }
            let batch = rowBatch(masks)
            var flat: [Int] = []
            for (r, i) in masks.enumerated() {
                guard case .fillMask(_, _, let positions) = jobs[i] else { continue }
                flat += positions.map { r * batch.sequenceLength + $0 }
            }
            let probabilities = try network.maskedTokenProbabilities(batch, positions: flat)
            var next = 0
            for i in masks {
                guard case .fillMask(_, _, let positions) = jobs[i] else { continue }
                outputs[i] = probabilities[next..<next + positions.count].flatMap { $0 }
                next += positions.count
            }
        }
        return outputs
    }

    private static func embedderOf(_ head: Head) -> SentenceEmbedder? {
        switch head {
        case .embedder(let e), .maskedLM(_, let e): return e
        default: return nil
        }
    }
}
