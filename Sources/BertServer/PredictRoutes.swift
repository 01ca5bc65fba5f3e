import Bert
import Foundation
import Hummingbird

extension InferenceServer {
    /// `POST /predict`: {"inputs": text, [text, text] (a pair), or a list of either; "raw_scores"?,
    /// "truncate"?} → [{"label", "score"}] best first (a list of those for a list of inputs).
    /// Scores are softmax probabilities, or the logits with `raw_scores`.
    func predict(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .predict, json)
            guard case .classifier(let network) = model.head else { throw APIError.notFound("/predict") }
            let (examples, single) = try predictInputs(json)
            let raw = try json.bool("raw_scores") ?? false
            let truncate = try json.bool("truncate") ?? options.autoTruncate
            let jobs = try examples.map { e -> Job in
                let encoding = try encode(e.text, pair: e.textPair, truncate: truncate, for: model)
                return .row(ids: encoding.ids, typeIds: encoding.typeIds)
            }
            let (logits, timing) = try await schedule(jobs, on: model, context)
            let labels = network.labels
            let results = logits.map { row -> [[String: Any]] in
                let scores = raw ? row.map(Double.init) : Bert.softmax(row)  // as bert predict
                return zip(labels, scores).sorted { $0.1 > $1.1 }.map { ["label": $0.0, "score": $0.1] }
            }
            metrics.count(route: "predict", inputs: examples.count, timing: timing)
            return try jsonResponse(single ? results[0] : results, headers: timing.headers)
        }
    }

    /// `POST /rerank` (a one-label classifier as a cross-encoder): {"query", "texts", "raw_scores"?,
    /// "return_text"?, "truncate"?} → [{"index", "score", "text"?}] best first; scores are the
    /// sigmoid of the logit, or the logit with `raw_scores`.
    func rerank(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .rerank, json)
            guard let query = try json.string("query") else { throw APIError.validation("missing field `query`") }
            guard !query.isEmpty else { throw APIError.validation("`query` cannot be empty") }
            let (texts, _) = try json.texts("texts", maxCount: options.maxClientBatchSize)
            let raw = try json.bool("raw_scores") ?? false
            let returnText = try json.bool("return_text") ?? false
            let truncate = try json.bool("truncate") ?? options.autoTruncate
            let jobs = try texts.map { text -> Job in
                let encoding = try encode(query, pair: text, truncate: truncate, for: model)
                return .row(ids: encoding.ids, typeIds: encoding.typeIds)
            }
            let (logits, timing) = try await schedule(jobs, on: model, context)
            let ranked = logits.enumerated().map { i, row -> [String: Any] in
                let score = raw ? Double(row[0]) : 1 / (1 + Foundation.exp(-Double(row[0])))
                var entry: [String: Any] = ["index": i, "score": score]
                if returnText { entry["text"] = texts[i] }
                return entry
            }.sorted { ($0["score"] as! Double) > ($1["score"] as! Double) }
            metrics.count(route: "rerank", inputs: texts.count, timing: timing)
            return try jsonResponse(ranked, headers: timing.headers)
        }
    }

    /// TEI's predict inputs: a text; two texts (a pair); or a list of texts or pairs.
    func predictInputs(_ json: RequestJSON) throws -> ([LabeledExample], single: Bool) {
        guard let value = json.object["inputs"] else { throw APIError.validation("missing field `inputs`") }
        func sequence(_ item: Any, _ field: String) throws -> LabeledExample {
            if let text = item as? String, !text.isEmpty { return LabeledExample(text: text) }
            if let pair = item as? [Any], pair.count == 2, let a = pair[0] as? String, let b = pair[1] as? String,
                !a.isEmpty, !b.isEmpty
            {
                return LabeledExample(text: a, textPair: b)
            }
            throw APIError.validation("`\(field)` must be a non-empty text or a pair of texts")
        }
        if value is String { return ([try sequence(value, "inputs")], true) }
        guard let list = value as? [Any], !list.isEmpty else {
            throw APIError.validation("`inputs` must be a text, a pair of texts, or a non-empty list of them")
        }
        if list.count == 2, list.allSatisfy({ $0 is String }) { return ([try sequence(list, "inputs")], true) }
        guard list.count <= options.maxClientBatchSize else {
            throw APIError.validation(
                "`inputs` has \(list.count) inputs, more than the client batch size \(options.maxClientBatchSize)")
        }
        return (try list.enumerated().map { try sequence($1, "inputs[\($0)]") }, false)
    }
}
