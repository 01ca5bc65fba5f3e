import Foundation

// Loading and saving Hugging Face tokenizer files: tokenizer.json (the `tokenizers` format),
// tokenizer_config.json (transformers' settings), vocab.txt.

extension BertTokenizer {
    /// Loads a Hugging Face model folder: `tokenizer.json` when present, else `vocab.txt`;
    /// `tokenizer_config.json`'s do_lower_case / strip_accents / tokenize_chinese_chars override
    /// the normalizer as transformers' BertTokenizerFast does.
    public init(modelFolder folder: URL) throws {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: folder.path, isDirectory: &isDir) else {
            throw TokenizerError.fileNotFound(folder.path)
        }
        guard isDir.boolValue else { throw TokenizerError.malformed(folder.path, "not a folder") }
        let json = folder.appendingPathComponent("tokenizer.json")
        let vocab = folder.appendingPathComponent("vocab.txt")
        let config = folder.appendingPathComponent("tokenizer_config.json")
        if fm.fileExists(atPath: json.path) {
            try self.init(tokenizerJSON: json)
        } else if fm.fileExists(atPath: vocab.path) {
            try self.init(vocabFile: vocab)
        } else {
            throw TokenizerError.fileNotFound(folder.appendingPathComponent("tokenizer.json or vocab.txt").path)
        }
        if fm.fileExists(atPath: config.path) {
            let object = try readJSONObject(config)
            var options = normalizer
            if let v = object["do_lower_case"] as? Bool { options.lowercase = v }
            if let v = object["tokenize_chinese_chars"] as? Bool { options.handleChineseChars = v }
            if object.keys.contains("strip_accents") { options.stripAccents = object["strip_accents"] as? Bool }
            normalizer = options
        }
    }

    /// Loads a `tokenizer.json` with a WordPiece model, BertNormalizer and BertPreTokenizer.
    public init(tokenizerJSON url: URL) throws {
        let path = url.path
        let root = try readJSONObject(url, pairsAt: ["model", "vocab"])
        func bad(_ why: String) -> TokenizerError { .malformed(path, why) }

        guard let model = root["model"] as? [String: Any] else { throw bad("no \"model\" object") }
        let modelType = model["type"] as? String ?? "WordPiece"
        guard modelType == "WordPiece" else {
            throw TokenizerError.unsupported(path, "model type \(modelType) (only WordPiece)")
        }
        guard let vocabPairs = model["vocab"] as? JSONObjectPairs else {
            throw bad("the model has no \"vocab\" map")
        }
        var ids: [(String, Int)] = []
        ids.reserveCapacity(vocabPairs.keys.count)
        for (token, value) in zip(vocabPairs.keys, vocabPairs.values) {
            guard let id = (value as? NSNumber)?.intValue else {
                throw bad("vocabulary entry \"\(token)\" has no integer id")
            }
            ids.append((token, id))
        }
        let vocabulary = try Vocabulary(map: ids, source: path)
        let unk = model["unk_token"] as? String ?? "[UNK]"
        let prefix = model["continuing_subword_prefix"] as? String ?? "##"
        let maxChars = (model["max_input_chars_per_word"] as? NSNumber)?.intValue ?? 100

        var options = NormalizerOptions(
            cleanText: false, handleChineseChars: false, stripAccents: false, lowercase: false)
        if let n = root["normalizer"] as? [String: Any] {
            guard n["type"] as? String == "BertNormalizer" else {
                throw TokenizerError.unsupported(path, "normalizer \(n["type"] ?? "?") (only BertNormalizer)")
            }
            options = NormalizerOptions(
                cleanText: n["clean_text"] as? Bool ?? true,
                handleChineseChars: n["handle_chinese_chars"] as? Bool ?? true,
                stripAccents: n["strip_accents"] as? Bool,
                lowercase: n["lowercase"] as? Bool ?? true)
        } else if !(root["normalizer"] is NSNull) && root["normalizer"] != nil {
            throw bad("\"normalizer\" is not an object")
        }
        if let p = root["pre_tokenizer"] as? [String: Any], p["type"] as? String != "BertPreTokenizer" {
            throw TokenizerError.unsupported(path, "pre_tokenizer \(p["type"] ?? "?") (only BertPreTokenizer)")
        }

        var added: [AddedToken] = []
        for (k, item) in (root["added_tokens"] as? [[String: Any]] ?? []).enumerated() {
            guard let content = item["content"] as? String, let id = jsonTokenId(item["id"]) else {
                throw bad("added_tokens[\(k)] needs \"content\" and an \"id\" in 0...\(Int32.max)")
            }
            added.append(
                AddedToken(
                    content: content, id: id, special: item["special"] as? Bool ?? false,
                    singleWord: item["single_word"] as? Bool ?? false,
                    lstrip: item["lstrip"] as? Bool ?? false, rstrip: item["rstrip"] as? Bool ?? false,
                    normalized: item["normalized"] as? Bool ?? !(item["special"] as? Bool ?? false)))
        }

        var post: PostProcessor? = nil
        if let p = root["post_processor"] as? [String: Any] {
            post = try parsePostProcessor(p, path: path)
        }
        try self.init(
            vocabulary: vocabulary, normalizer: options, unknownToken: unk, continuingPrefix: prefix,
            maxInputCharsPerWord: maxChars, addedTokens: added,
            postProcessor: post
                ?? PostProcessor(
                    single: [.sequence(0, typeId: 0)],
                    pair: [.sequence(0, typeId: 0), .sequence(1, typeId: 1)]))
        if let d = root["decoder"] as? [String: Any] {
            decoderCleanup = d["cleanup"] as? Bool ?? true
        }
        if let t = root["truncation"] as? [String: Any] {
            guard let maxLength = (t["max_length"] as? NSNumber)?.intValue else {
                throw bad("truncation has no max_length")
            }
            let strategy: TruncationStrategy
            switch t["strategy"] as? String ?? "LongestFirst" {
            case "LongestFirst": strategy = .longestFirst
            case "OnlyFirst": strategy = .onlyFirst
            case "OnlySecond": strategy = .onlySecond
            case let other: throw bad("unknown truncation strategy \(other)")
            }
            truncation = Truncation(
                maxLength: maxLength, strategy: strategy,
                stride: (t["stride"] as? NSNumber)?.intValue ?? 0,
                direction: (t["direction"] as? String) == "Left" ? .left : .right)
        }
        if let p = root["padding"] as? [String: Any] {
            var pad = Padding()
            if let s = p["strategy"] as? [String: Any], let n = (s["Fixed"] as? NSNumber)?.intValue {
                pad.strategy = .fixed(n)
            } else if let s = p["strategy"] as? String, s == "BatchLongest" {
                pad.strategy = .batchLongest
            } else if p["strategy"] != nil {
                throw bad("unknown padding strategy")
            }
            pad.direction = (p["direction"] as? String) == "Left" ? .left : .right
            pad.padToMultipleOf = (p["pad_to_multiple_of"] as? NSNumber)?.intValue
            pad.padId = (p["pad_id"] as? NSNumber)?.int32Value ?? 0
            pad.padTypeId = (p["pad_type_id"] as? NSNumber)?.int32Value ?? 0
            pad.padToken = p["pad_token"] as? String ?? "[PAD]"
            padding = pad
        }
    }
}

private func parsePostProcessor(_ p: [String: Any], path: String) throws -> PostProcessor {
    func bad(_ why: String) -> TokenizerError { .malformed(path, "post_processor: " + why) }
    switch p["type"] as? String {
    case "BertProcessing":
        guard let sep = p["sep"] as? [Any], let cls = p["cls"] as? [Any], sep.count == 2, cls.count == 2,
            let sepId = jsonTokenId(sep[1]), let clsId = jsonTokenId(cls[1])
        else {
            throw bad("BertProcessing needs sep and cls as [token, id]")
        }
        return .bert(cls: clsId, sep: sepId)
    case "TemplateProcessing":
        let specials = p["special_tokens"] as? [String: [String: Any]] ?? [:]
        func pieces(_ key: String) throws -> [PostProcessor.Piece] {
            guard let items = p[key] as? [[String: Any]] else {
                throw bad("TemplateProcessing has no \"\(key)\" template")
            }
            return try items.map { item in
                if let s = item["SpecialToken"] as? [String: Any], let name = s["id"] as? String {
                    guard let raw = specials[name]?["ids"] as? [Any], case let ids = raw.compactMap(jsonTokenId),
                        ids.count == raw.count
                    else {
                        throw bad("special token \(name) is not defined with ids in 0...\(Int32.max)")
                    }
                    return .special(ids: ids, typeId: (s["type_id"] as? NSNumber)?.int32Value ?? 0)
                }
                if let s = item["Sequence"] as? [String: Any], let name = s["id"] as? String {
                    return .sequence(name == "B" ? 1 : 0, typeId: (s["type_id"] as? NSNumber)?.int32Value ?? 0)
                }
                throw bad("unknown template piece")
            }
        }
        return PostProcessor(single: try pieces("single"), pair: try pieces("pair"))
    case let other:
        throw TokenizerError.unsupported(path, "post_processor \(other ?? "?")")
    }
}

/// A token id from JSON: an integer in 0...Int32.max, else nil (2^40 must not wrap around).
private func jsonTokenId(_ value: Any?) -> Int32? {
    guard let n = value as? NSNumber, let i = Int(exactly: n.doubleValue), (0...Int(Int32.max)).contains(i) else {
        return nil
    }
    return Int32(i)
}

func readJSONObject(_ url: URL, pairsAt pairsPath: [String] = []) throws -> [String: Any] {
    let data: Data
    do {
        data = try Data(contentsOf: url)
    } catch {
        if !FileManager.default.fileExists(atPath: url.path) { throw TokenizerError.fileNotFound(url.path) }
        throw TokenizerError.unreadable(url.path, fileErrorReason(error, path: url.path))
    }
    let object: Any
    do {
        object = try JSONReader.parse(droppingByteOrderMark(data), pairsAt: pairsPath)
    } catch {
        throw TokenizerError.malformed(url.path, "invalid JSON (\(error))")
    }
    guard let dict = object as? [String: Any] else {
        throw TokenizerError.malformed(url.path, "the top level is not a JSON object")
    }
    return dict
}
