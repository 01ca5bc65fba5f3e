import Bert
import Foundation
import Hummingbird

extension InferenceServer {
    /// `POST /embed`: {"inputs": text or [text], "normalize"?, "truncate"?, "dimensions"?} →
    /// [[Float]], one vector per input. `normalize` defaults to the folder's Normalize module;
    /// `dimensions` keeps the first N numbers (then normalises, when normalising).
    func embed(_ request: Request) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let (texts, _) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let (vectors, timing) = try await embeddings(texts, json: json)
            metrics.count(route: "embed", inputs: texts.count, timing: timing)
            return jsonResponse(vectors, headers: timing.headers)
        }
    }

    /// `POST /v1/embeddings`, OpenAI's shape: {"input", "model"?, "encoding_format"?: float|base64,
    /// "dimensions"?} → {"object": "list", "data": [{"object": "embedding", "index", "embedding"}],
    /// "model", "usage": {"prompt_tokens", "total_tokens"}}.
    func openAIEmbeddings(_ request: Request) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let (texts, _) = try json.texts("input", maxCount: options.maxClientBatchSize)
            let format = try json.string("encoding_format") ?? "float"
            guard format == "float" || format == "base64" else {
                throw APIError.validation("`encoding_format` must be float or base64")
            }
            let (vectors, timing) = try await embeddings(texts, json: json)
            let data = vectors.enumerated().map { i, v -> [String: Any] in
                let embedding: Any =
                    format == "float"
                    ? v
                    : v.withUnsafeBytes { Data($0) }.base64EncodedString()  // little-endian float32, as OpenAI
                return ["object": "embedding", "index": i, "embedding": embedding]
            }
            metrics.count(route: "v1/embeddings", inputs: texts.count, timing: timing)
            return jsonResponse(
                [
                    "object": "list", "data": data, "model": (try json.string("model")) ?? model.name,
                    "usage": ["prompt_tokens": timing.tokens, "total_tokens": timing.tokens],
                ], headers: timing.headers)
        }
    }

    /// Tokenizes here (off the compute thread), batches the forward passes with other requests,
    /// then normalises and shortens each vector as asked.
    func embeddings(_ texts: [String], json: RequestJSON) async throws -> ([[Float]], Timing) {
        let truncate = try json.bool("truncate") ?? options.autoTruncate
        let normalize = try json.bool("normalize") ?? model.normalizesByDefault
        let dimensions = try json.int("dimensions")
        if let d = dimensions, d < 1 { throw APIError.validation("`dimensions` must be at least 1") }
        let jobs = try texts.map { text -> (Job, Int) in
            let e = try encode(text, truncate: truncate)
            guard e.count > 0 else { throw APIError.validation("an input has no tokens") }
            return (.embed(e), e.count)
        }
        var (vectors, timing) = try await schedule(jobs)
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
