import BertTokenizer
import Foundation
import Hummingbird

extension InferenceServer {
    /// `POST /tokenize`: {"inputs": text or [text], "add_special_tokens"?: true} → for each input
    /// [{"id", "text", "special", "start", "stop"}], with UTF-8 byte offsets into the input (as
    /// text-embeddings-inference reports them).
    func tokenize(_ request: Request) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: nil, json)
            let (texts, _) = try json.texts("inputs", maxCount: options.maxClientBatchSize)
            let special = try json.bool("add_special_tokens") ?? true
            var tokenizer = model.tokenizer
            tokenizer.offsetUnit = .utf8
            let result = try texts.map { text -> [[String: Any]] in
                let e: Encoding
                do { e = try tokenizer.encode(text, addSpecialTokens: special) } catch {
                    throw APIError.tokenizer("\(error)")
                }
                let bytes = Array(text.utf8)
                let pieces = tokenizer.tokens(e.ids)
                return e.ids.indices.map { i -> [String: Any] in
                    let isSpecial = e.specialTokensMask[i] == 1
                    let (start, stop) = (e.offsets[i].start, min(e.offsets[i].end, bytes.count))
                    var entry: [String: Any] = ["id": Int(e.ids[i]), "special": isSpecial]
                    if isSpecial {
                        entry["text"] = pieces[i]
                        entry["start"] = NSNull()
                        entry["stop"] = NSNull()
                    } else {
                        entry["text"] = String(decoding: bytes[min(start, stop)..<stop], as: UTF8.self)
                        entry["start"] = start
                        entry["stop"] = stop
                    }
                    return entry
                }
            }
            return try jsonResponse(result)
        }
    }

    /// `POST /decode`: {"ids": [id] or [[id]], "skip_special_tokens"?: true} → [text].
    func decode(_ request: Request) async throws -> Response {
        try await admitted {
            let json = try await body(request)
            let model = try model(for: nil, json)
            guard let value = json.object["ids"] else { throw APIError.validation("missing field `ids`") }
            let skip = try json.bool("skip_special_tokens") ?? true
            func ids(_ item: Any, _ field: String) throws -> [Int32] {
                guard let list = item as? [Any] else { throw APIError.validation("`\(field)` must be a list of ids") }
                return try list.enumerated().map { i, x in
                    guard let n = x as? NSNumber, !isBoolean(n), let id = Int32(exactly: n.doubleValue), id >= 0,
                        Int(id) < model.tokenizer.vocabulary.count
                    else { throw APIError.validation("`\(field)[\(i)]` is not a token id of this model") }
                    return id
                }
            }
            guard let list = value as? [Any] else { throw APIError.validation("`ids` must be a list of ids") }
            let sequences =
                list.first is [Any] ? try list.enumerated().map { try ids($1, "ids[\($0)]") } : [try ids(list, "ids")]
            return try jsonResponse(sequences.map { model.tokenizer.decode($0, skipSpecialTokens: skip) })
        }
    }
}
