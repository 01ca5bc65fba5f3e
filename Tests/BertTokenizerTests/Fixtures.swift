import Foundation
import Testing
import BertTokenizer

/// Paths of the data the README's test command prepares (scripts/prepare-test-data.sh):
/// the real all-MiniLM-L6-v2 tokenizer, the prose corpora and Hugging Face's reference encodings.
enum Fixtures {
    static let packageRoot = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
    static let cache = packageRoot.appendingPathComponent(".cache")
    static let model = cache.appendingPathComponent("models/all-MiniLM-L6-v2")
    static let references = cache.appendingPathComponent("fixtures/tokenizer")
    static let corpus = cache.appendingPathComponent("corpus")

    /// The README's test command sets this: then missing data is a failure, not a skip.
    static let required = ProcessInfo.processInfo.environment["BERT_REQUIRE_FIXTURES"] == "1"

    static var haveModel: Bool {
        FileManager.default.fileExists(atPath: model.appendingPathComponent("tokenizer.json").path)
    }
    static var haveReferences: Bool {
        FileManager.default.fileExists(atPath: references.appendingPathComponent("manifest.json").path)
    }
    static var haveCorpus: Bool { FileManager.default.fileExists(atPath: corpus.appendingPathComponent("en.txt").path) }

    static func miniLM() throws -> BertTokenizer { try BertTokenizer(modelFolder: model) }
}

/// One case of the reference manifest written by scripts/make_tokenizer_reference.py.
struct ReferenceCase: Sendable, CustomTestStringConvertible {
    struct Trunc: Sendable { var maxLength: Int; var stride: Int; var strategy: String }
    struct Pad: Sendable { var strategy: String; var length: Int?; var multiple: Int?; var group: Int }
    var name: String
    var inputs: String
    var pair: Bool
    var lowercase: Bool
    var stripAccents: Bool?
    var truncation: Trunc?
    var padding: Pad?
    var fileSettings: Bool
    var reference: String
    var decode: String?

    var testDescription: String { name }

    static func all() -> [ReferenceCase] {
        let url = Fixtures.references.appendingPathComponent("manifest.json")
        guard let data = try? Data(contentsOf: url),
            let root = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let cases = root["cases"] as? [[String: Any]]
        else { return [] }
        return cases.map { c in
            var trunc: Trunc? = nil
            if let t = c["truncation"] as? [String: Any] {
                trunc = Trunc(
                    maxLength: t["max_length"] as! Int, stride: t["stride"] as? Int ?? 0,
                    strategy: t["strategy"] as? String ?? "longest_first")
            }
            var pad: Pad? = nil
            if let p = c["padding"] as? [String: Any] {
                pad = Pad(
                    strategy: p["strategy"] as! String, length: p["length"] as? Int,
                    multiple: p["pad_to_multiple_of"] as? Int, group: p["group"] as? Int ?? 1)
            }
            return ReferenceCase(
                name: c["name"] as! String, inputs: c["inputs"] as! String, pair: c["pair"] as! Bool,
                lowercase: c["lowercase"] as! Bool, stripAccents: c["strip_accents"] as? Bool,
                truncation: trunc, padding: pad, fileSettings: c["file_settings"] as? Bool ?? false,
                reference: c["reference"] as! String, decode: c["decode"] as? String)
        }
    }

    /// The inputs: strings, or [a, b] pairs. Parsed by hand: Foundation's JSON parser drops a
    /// leading U+FEFF inside strings, and the adversarial inputs have some.
    func loadInputs() throws -> [(String, String?)] {
        let data = try Data(contentsOf: Fixtures.references.appendingPathComponent(inputs))
        var out: [(String, String?)] = []
        for line in data.split(separator: UInt8(ascii: "\n"), omittingEmptySubsequences: true) {
            var p = JSONStrings(bytes: Array(line))
            let values = try p.values()
            if values.count == 1 && !p.sawArray {
                out.append((values[0], nil))
            } else if values.count == 2 && p.sawArray {
                out.append((values[0], values[1]))
            } else {
                throw TokenizerError.malformed(inputs, "bad input line")
            }
        }
        return out
    }

    /// Reference encodings per input: nil where Hugging Face raised an error.
    func loadReference() throws -> [[Encoding]?] {
        let data = try Data(contentsOf: Fixtures.references.appendingPathComponent(reference))
        return data.withUnsafeBytes { raw -> [[Encoding]?] in
            let words = raw.bindMemory(to: Int32.self)
            var k = 0
            func next() -> Int32 { defer { k += 1 }; return Int32(littleEndian: words[k]) }
            func array(_ n: Int) -> [Int32] { defer { k += n }; return Array(words[k..<(k + n)]) }
            var out: [[Encoding]?] = []
            while k < words.count {
                let e = Int(next())
                if e < 0 { out.append(nil); continue }
                var list: [Encoding] = []
                for _ in 0..<e {
                    let n = Int(next())
                    var enc = Encoding()
                    enc.ids = array(n)
                    enc.typeIds = array(n)
                    enc.specialTokensMask = array(n)
                    enc.attentionMask = array(n)
                    enc.wordIds = array(n)
                    let starts = array(n), ends = array(n)
                    enc.offsets = zip(starts, ends).map { Offset(Int($0), Int($1)) }
                    list.append(enc)
                }
                out.append(list)
            }
            return out
        }
    }

    /// The tokenizer configured as the case says.
    func tokenizer() throws -> BertTokenizer {
        var t = try Fixtures.miniLM()
        if fileSettings { return t }
        t.truncation = nil
        t.padding = nil
        t.normalizer.lowercase = lowercase
        t.normalizer.stripAccents = stripAccents
        if let tr = truncation {
            t.truncation = Truncation(
                maxLength: tr.maxLength, strategy: TruncationStrategy(rawValue: tr.strategy)!,
                stride: tr.stride)
        }
        if let p = padding {
            t.padding = Padding(
                strategy: p.strategy == "fixed" ? .fixed(p.length!) : .batchLongest,
                padToMultipleOf: p.multiple)
        }
        return t
    }
}

/// The fields that the reference stores (sequence ids are not in it).
func sameAsReference(_ a: Encoding, _ b: Encoding) -> Bool {
    a.ids == b.ids && a.typeIds == b.typeIds && a.specialTokensMask == b.specialTokensMask
        && a.attentionMask == b.attentionMask && a.wordIds == b.wordIds && a.offsets == b.offsets
}

func flattenForReference(_ e: Encoding) -> [Encoding] {
    var main = e
    main.overflowing = []
    return [main]
        + e.overflowing.map {
            var o = $0; o.sequenceIds = []; return o
        }
}

func describe(_ e: Encoding) -> String {
    "ids \(e.ids) types \(e.typeIds) words \(e.wordIds) offsets "
        + "\(e.offsets.map { "(\($0.start),\($0.end))" }.joined()) special \(e.specialTokensMask) attention "
        + "\(e.attentionMask)"
}

/// A minimal JSON reader for a string or an array of strings, keeping every scalar.
struct JSONStrings {
    let bytes: [UInt8]
    var i = 0
    var sawArray = false

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func values() throws -> [String] {
        var out: [String] = []
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "["): sawArray = true; i += 1
            case UInt8(ascii: "\""): out.append(try string())
            default: i += 1
            }
        }
        return out
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count, let v = UInt32(String(decoding: bytes[i..<(i + 4)], as: UTF8.self), radix: 16)
        else {
            throw TokenizerError.malformed("json", "bad \\u escape")
        }
        i += 4
        return v
    }

    private mutating func string() throws -> String {
        i += 1
        var raw: [UInt8] = []
        var scalars = String.UnicodeScalarView()
        func flushRaw() {
            scalars.append(contentsOf: String(decoding: raw, as: UTF8.self).unicodeScalars)
            raw.removeAll()
        }
        while i < bytes.count {
            let b = bytes[i]
            if b == UInt8(ascii: "\"") { i += 1; break }
            if b != UInt8(ascii: "\\") { raw.append(b); i += 1; continue }
            flushRaw()
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "n"): scalars.append("\n")
            case UInt8(ascii: "t"): scalars.append("\t")
            case UInt8(ascii: "r"): scalars.append("\r")
            case UInt8(ascii: "b"): scalars.append("\u{08}")
            case UInt8(ascii: "f"): scalars.append("\u{0C}")
            case UInt8(ascii: "u"):
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 6 <= bytes.count, bytes[i] == UInt8(ascii: "\\") {
                    i += 2
                    let low = try hex4()
                    v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                }
                scalars.append(Unicode.Scalar(v) ?? "\u{FFFD}")
            default: scalars.append(Unicode.Scalar(e))
            }
        }
        flushRaw()
        return String(scalars)
    }
}
