import Bert
import BertTokenizer
import Foundation
import Hummingbird

extension InferenceServer {
    /// `POST /tag` (a token classifier): {"inputs": text or [text], "model"?} → {"words": [{"word",
    /// "tag", "start", "end"}], "entities": [{"type", "text", "start", "end"}]} per input, as
    /// `bert predict` prints them (offsets in Unicode scalars of the input); a list for a list.
    func tag(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .tag, json)
            guard case .tagger(let tagger) = model.head else { throw APIError.notFound("/tag") }
            let (texts, single) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let inputs = try texts.map { text -> TaggingInput in
                do { return try tagger.taggingInput(text) } catch { throw APIError.tokenizer("\(error)") }
            }
            let jobs = inputs.map { Job.row(ids: $0.ids, typeIds: [Int32](repeating: 0, count: $0.ids.count)) }
            let (logits, timing) = try await schedule(jobs, on: model, context)
            let results = zip(inputs, logits).map { input, row -> [String: Any] in
                let tagged = tagger.tagged(input, logits: row[...])
                return [
                    "words": tagged.words.map { ["word": $0.word, "tag": $0.tag, "start": $0.start, "end": $0.end] },
                    "entities": tagged.entities.map {
                        ["type": $0.type, "text": $0.text, "start": $0.start, "end": $0.end]
                    },
                ]
            }
            metrics.count(route: "tag", inputs: texts.count, timing: timing)
            return try jsonResponse(single ? results[0] : results, headers: timing.headers)
        }
    }

    /// `POST /answer` (a question-answering model): {"inputs": {"question", "context"} or a list of
    /// them, "model"?} → {"answer", "start", "end", "score", "null_score"} per question, as `bert
    /// predict` gives them: the best span over the context's windows (the folder's
    /// qa_settings.json sets window, stride and answer length); start and end in Unicode scalars.
    func answer(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .answer, json)
            guard case .answerer(let answerer) = model.head else { throw APIError.notFound("/answer") }
            guard let value = json.object["inputs"] else { throw APIError.validation("missing field `inputs`") }
            let single = value is [String: Any]
            guard let list = single ? [value] : value as? [Any], !list.isEmpty else {
                throw APIError.validation("`inputs` must be {\"question\", \"context\"} or a non-empty list of them")
            }
            guard list.count <= options.maxClientBatchSize else {
                throw APIError.validation(
                    "`inputs` has \(list.count) inputs, more than the client batch size \(options.maxClientBatchSize)")
            }
            let examples = try list.enumerated().map { i, item -> SquadExample in
                let field = single ? "inputs" : "inputs[\(i)]"
                guard let object = item as? [String: Any] else {
                    throw APIError.validation("`\(field)` must be an object with `question` and `context`")
                }
                let o = RequestJSON(object: object)
                guard let question = try o.string("question"),
                    !question.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty
                else { throw APIError.validation("`\(field).question` must be a non-empty text") }
                guard let text = try o.string("context"), !text.isEmpty else {
                    throw APIError.validation("`\(field).context` must be a non-empty text")
                }
                return SquadExample(id: String(i), question: question, context: text)
            }
            let features: [QAFeature]
            do { features = try answerer.features(examples) } catch { throw APIError.tokenizer("\(error)") }
            let jobs = features.map { Job.row(ids: $0.ids, typeIds: $0.typeIds) }
            let (logits, timing) = try await schedule(jobs, on: model, context)
            let windows = zip(features, logits).map { f, row in
                WindowLogits(start: Array(row[0..<f.ids.count]), end: Array(row[f.ids.count...]))
            }
            let results = answerer.answers(examples, features: features, logits: windows).map { p -> [String: Any] in
                [
                    "answer": p.text, "start": p.start, "end": p.end,
                    "score": Double(p.score.isFinite ? p.score : 0),
                    "null_score": Double(p.nullScore.isFinite ? p.nullScore : 0),
                ]
            }
            metrics.count(route: "answer", inputs: examples.count, timing: timing)
            return try jsonResponse(single ? results[0] : results, headers: timing.headers)
        }
    }

    /// `POST /fill-mask` (a masked-LM folder): {"inputs": text or [text], "top_k"?: 5, "truncate"?,
    /// "model"?} → for each [MASK] of a text, its `top_k` tokens best first: [{"token", "token_str",
    /// "score"}] (a list of those per mask; a list of texts gives a list of those). Scores are
    /// the probabilities `bert fill-mask` prints.
    func fillMask(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .fillMask, json)
            guard case .maskedLM(let network, _) = model.head else { throw APIError.notFound("/fill-mask") }
            guard let maskId = model.tokenizer.tokenId("[MASK]") else {
                throw APIError.validation("this model's vocabulary has no [MASK]")
            }
            let (texts, single) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let vocab = network.config.vocabSize
            let k = try json.int("top_k") ?? 5
            guard (1...vocab).contains(k) else { throw APIError.validation("`top_k` must be between 1 and \(vocab)") }
            let truncate = try json.bool("truncate") ?? options.autoTruncate
            let jobs = try texts.enumerated().map { n, text -> Job in
                let e = try encode(text, truncate: truncate, for: model)
                let masks = e.ids.indices.filter { e.ids[$0] == maskId }
                let field = single ? "inputs" : "inputs[\(n)]"
                guard !masks.isEmpty else { throw APIError.validation("`\(field)` has no [MASK] token") }
                let written = text.components(separatedBy: "[MASK]").count - 1
                if masks.count < written {
                    throw APIError.validation(
                        "`\(field)`: \(written - masks.count) of its \(written) [MASK]s are past the model's "
                            + "\(model.maxInputLength) tokens")
                }
                return .fillMask(ids: e.ids, typeIds: e.typeIds, positions: masks)
            }
            let (rows, timing) = try await schedule(jobs, on: model, context)
            let results = rows.map { flat -> [[[String: Any]]] in
                stride(from: 0, to: flat.count, by: vocab).map { base in
                    let p = Array(flat[base..<base + vocab])
                    return topIndices(p, k).map { id in
                        ["token": id, "token_str": model.tokenizer.tokens([Int32(id)])[0], "score": Double(p[id])]
                    }
                }
            }
            metrics.count(route: "fill-mask", inputs: texts.count, timing: timing)
            return try jsonResponse(single ? results[0] : results, headers: timing.headers)
        }
    }
}
