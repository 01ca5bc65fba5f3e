import Bert
import Foundation
import Hummingbird

extension InferenceServer {
    /// `POST /embed`: {"inputs": text or [text], "normalize"?, "truncate"?, "dimensions"?,
    /// "model"?} → [[Float]], one vector per input. `normalize` defaults to the folder's
    /// Normalize module; `dimensions` keeps the first N numbers (then normalises, when normalising).
    func embed(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .embed, json)
            let (texts, _) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let (vectors, timing) = try await embeddings(texts, json: json, model: model, context)
            metrics.count(route: "embed", inputs: texts.count, timing: timing)
            return try jsonResponse(vectors, headers: timing.headers)
        }
    }

    /// `POST /embed_all`: {"inputs": text or [text], "truncate"?, "model"?} → for each input, the
    /// last hidden state of each of its tokens (special tokens included): [[[Float]]].
    func embedAll(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .embedAll, json)
            let (texts, _) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let truncate = try json.bool("truncate") ?? options.autoTruncate
            let jobs = try texts.map { Job.tokenStates(try encode($0, truncate: truncate, for: model)) }
            let (states, timing) = try await schedule(jobs, on: model, context)
            let hidden = model.embedder?.model.config.hiddenSize ?? 1
            let result = states.map { flat in
                stride(from: 0, to: flat.count, by: hidden).map { Array(flat[$0..<$0 + hidden]) }
            }
            metrics.count(route: "embed_all", inputs: texts.count, timing: timing)
            return try jsonResponse(result, headers: timing.headers)
        }
    }

    /// `POST /similarity`: {"inputs": {"source_sentence": text, "sentences": [text]}, "truncate"?,
    /// "model"?} → [Float], the cosine similarity of each sentence's embedding to the source's.
    func similarity(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .similarity, json)
            guard let inputs = json.object["inputs"] as? [String: Any] else {
                throw APIError.validation("`inputs` must be an object with `source_sentence` and `sentences`")
            }
            let nested = RequestJSON(object: inputs)
            guard let source = try nested.string("source_sentence"), !source.isEmpty else {
                throw APIError.validation("`inputs.source_sentence` must be a non-empty text")
            }
            let (sentences, _) = try nested.texts("sentences", maxCount: options.maxClientBatchSize)
            var (vectors, timing) = try await embeddings(
                [source] + sentences, json: json, model: model, context, normalize: true)
            let first = vectors.removeFirst()
            let scores = vectors.map { v in Double(zip(first, v).reduce(Float(0)) { $0 + $1.0 * $1.1 }) }
            metrics.count(route: "similarity", inputs: sentences.count + 1, timing: timing)
            return try jsonResponse(scores, headers: timing.headers)
        }
    }

    /// `POST /v1/embeddings`, OpenAI's shape: {"input", "model"?, "encoding_format"?: float|base64,
    /// "dimensions"?} → {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
    /// "model", "usage": {"prompt_tokens", "total_tokens"}}.
    func openAIEmbeddings(_ request: Request, _ context: ServerContext) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: .openAIEmbeddings, json)
            let (texts, _) = try json.texts("input", maxCount: options.maxClientBatchSize)
            let format = try json.string("encoding_format") ?? "float"
            guard format == "float" || format == "base64" else {
                throw APIError.validation("`encoding_format` must be float or base64")
            }
            let (vectors, timing) = try await embeddings(texts, json: json, model: model, context)
            let data = vectors.enumerated().map { i, v -> [String: Any] in
                let embedding: Any =
                    format == "float"
                    ? v
                    : v.withUnsafeBytes { Data($0) }.base64EncodedString()  // little-endian float32, as OpenAI
                return ["object": "embedding", "index": i, "embedding": embedding]
            }
            metrics.count(route: "v1/embeddings", inputs: texts.count, timing: timing)
            return try jsonResponse(
                [
                    "object": "list", "data": data, "model": model.name,
                    "usage": ["prompt_tokens": timing.tokens, "total_tokens": timing.tokens],
                ], headers: timing.headers)
        }
    }

    /// Tokenizes here (off the compute thread), batches the forward passes with other requests,
    /// then normalises and shortens each vector as asked (`normalize` overrides the request's).
    func embeddings(
        _ texts: [String], json: RequestJSON, model: ServedModel, _ context: ServerContext, normalize: Bool? = nil
    ) async throws -> ([[Float]], Timing) {
        let truncate = try json.bool("truncate") ?? options.autoTruncate
        let normalize = try normalize ?? json.bool("normalize") ?? model.normalizesByDefault
        let dimensions = try json.int("dimensions")
        if let d = dimensions, d < 1 { throw APIError.validation("`dimensions` must be at least 1") }
        let jobs = try texts.map { text -> Job in
            let e = try encode(text, truncate: truncate, for: model)
            guard e.count > 0 else { throw APIError.validation("an input has no tokens") }
            return .embed(e)
        }
        var (vectors, timing) = try await schedule(jobs, on: model, context)
        if let d = dimensions {
            guard let full = vectors.first?.count, d <= full else {
                throw APIError.validation("`dimensions` \(d) is more than the model's \(vectors.first?.count ?? 0)")
            }
            vectors = vectors.map { Array($0.prefix(d)) }
        }
        if normalize { vectors = vectors.map(SentenceEmbedder.normalized) }
        return (vectors, timing)
    }
}
