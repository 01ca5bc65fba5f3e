import Foundation

// Writing `tokenizer.json` (the `tokenizers` format) so that a folder we produce loads in
// transformers' fast tokenizer with our exact settings.

extension BertTokenizer {
    /// The tokenizer as `tokenizers`' JSON: BertNormalizer, BertPreTokenizer, WordPiece model and
    /// decoder, the special tokens as added tokens, and the [CLS]/[SEP] template. Written by hand:
    /// vocabulary keys must stay byte-exact (two canonically equivalent tokens are different
    /// entries), which a String-keyed dictionary would merge.
    public func tokenizerJSON() -> Data {
        var o = "{\"version\":\"1.0\",\"truncation\":null,\"padding\":null,\"added_tokens\":["
        o += addedTokens.map { t in
            "{\"id\":\(t.id),\"content\":\(jsonString(t.content)),\"single_word\":\(t.singleWord),"
                + "\"lstrip\":\(t.lstrip),"
                + "\"rstrip\":\(t.rstrip),\"normalized\":false,\"special\":\(t.special)}"
        }.joined(separator: ",")
        let n = normalizer
        let strip = n.stripAccents.map { $0 ? "true" : "false" } ?? "null"
        o +=
            "],\"normalizer\":{\"type\":\"BertNormalizer\",\"clean_text\":\(n.cleanText),"
            + "\"handle_chinese_chars\":\(n.handleChineseChars),"
        o +=
            "\"strip_accents\":\(strip),\"lowercase\":\(n.lowercase)},"
            + "\"pre_tokenizer\":{\"type\":\"BertPreTokenizer\"},"
        if let cls = tokenId("[CLS]"), let sep = tokenId("[SEP]") {
            o += "\"post_processor\":{\"type\":\"TemplateProcessing\","
            o +=
                "\"single\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                + "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}}],"
            o +=
                "\"pair\":[{\"SpecialToken\":{\"id\":\"[CLS]\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
                + "\"type_id\":0}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":0}},"
            o += "{\"Sequence\":{\"id\":\"B\",\"type_id\":1}},{\"SpecialToken\":{\"id\":\"[SEP]\",\"type_id\":1}}],"
            o += "\"special_tokens\":{\"[CLS]\":{\"id\":\"[CLS]\",\"ids\":[\(cls)],\"tokens\":[\"[CLS]\"]},"
            o += "\"[SEP]\":{\"id\":\"[SEP]\",\"ids\":[\(sep)],\"tokens\":[\"[SEP]\"]}}},"
        } else {
            o += "\"post_processor\":null,"
        }
        o +=
            "\"decoder\":{\"type\":\"WordPiece\",\"prefix\":\(jsonString(continuingPrefix)),"
            + "\"cleanup\":\(decoderCleanup)},"
        o += "\"model\":{\"type\":\"WordPiece\",\"unk_token\":\(jsonString(unknownToken)),"
        o +=
            "\"continuing_subword_prefix\":\(jsonString(continuingPrefix)),"
            + "\"max_input_chars_per_word\":\(maxInputCharsPerWord),\"vocab\":{"
        o += vocabulary.tokens.enumerated().map { "\(jsonString($0.element)):\($0.offset)" }.joined(separator: ",")
        o += "}}}\n"
        return Data(o.utf8)
    }

    /// Writes tokenizer.json, vocab.txt and tokenizer_config.json into `folder`.
    public func write(to folder: URL) throws {
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try tokenizerJSON().write(to: folder.appendingPathComponent("tokenizer.json"), options: .atomic)
        try vocabulary.write(to: folder.appendingPathComponent("vocab.txt"))
        let n = normalizer
        var config =
            "{\n  \"do_lower_case\": \(n.lowercase),\n  \"strip_accents\": "
            + "\(n.stripAccents.map { $0 ? "true" : "false" } ?? "null"),\n"
        config += "  \"tokenize_chinese_chars\": \(n.handleChineseChars),\n  \"tokenizer_class\": \"BertTokenizer\",\n"
        for (key, token) in [
            ("unk_token", "[UNK]"), ("sep_token", "[SEP]"), ("pad_token", "[PAD]"), ("cls_token", "[CLS]"),
            ("mask_token", "[MASK]"),
        ]
        where tokenId(token) != nil {
            config += "  \"\(key)\": \"\(token)\",\n"
        }
        config += "  \"clean_up_tokenization_spaces\": \(decoderCleanup)\n}\n"
        try Data(config.utf8).write(to: folder.appendingPathComponent("tokenizer_config.json"), options: .atomic)
    }
}

/// A JSON string literal: quotes, backslashes and control characters escaped, everything else as is.
func jsonString(_ s: String) -> String {
    var out = "\""
    for u in s.unicodeScalars {
        switch u {
        case "\"": out += "\\\""
        case "\\": out += "\\\\"
        case "\n": out += "\\n"
        case "\r": out += "\\r"
        case "\t": out += "\\t"
        default:
            if u.value < 0x20 { out += String(format: "\\u%04x", u.value) } else { out.unicodeScalars.append(u) }
        }
    }
    return out + "\""
}
