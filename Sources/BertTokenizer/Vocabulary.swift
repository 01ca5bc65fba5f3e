import Foundation

/// A token's UTF-8 bytes as a dictionary key. Swift's String equality is canonical
/// equivalence ("K" == KELVIN SIGN), Hugging Face compares bytes: two such tokens are different
/// tokens with different ids.
struct UTF8Key: Hashable, Sendable {
    let bytes: [UInt8]
    init(_ s: String) { bytes = Array(s.utf8) }
}

/// A WordPiece vocabulary: token strings by id and ids by token (compared byte for byte).
public final class Vocabulary: Sendable {
    public let tokens: [String]
    private let ids: [UTF8Key: Int32]

    /// `tokens[i]` gets id `i`. When a token appears twice, lookups give the later id, as
    /// Hugging Face's loaders do.
    public init(tokens: [String]) {
        self.tokens = tokens
        var ids = [UTF8Key: Int32](minimumCapacity: tokens.count)
        for (i, t) in tokens.enumerated() { ids[UTF8Key(t)] = Int32(i) }
        self.ids = ids
    }

    /// From token -> id pairs (tokenizer.json's vocabulary object, keys byte-exact). Ids must be
    /// 0..<count with no gaps.
    public convenience init(map: [(String, Int)], source: String) throws {
        var tokens = [String?](repeating: nil, count: map.count)
        for (t, i) in map {
            guard i >= 0, i < map.count else {
                throw TokenizerError.malformed(source, "vocabulary id \(i) of \"\(t)\" is outside 0..<\(map.count)")
            }
            guard tokens[i] == nil else {
                throw TokenizerError.malformed(source, "vocabulary id \(i) is given to two tokens")
            }
            tokens[i] = t
        }
        if let gap = tokens.firstIndex(where: { $0 == nil }) {
            throw TokenizerError.malformed(
                source, "no vocabulary token has id \(gap) (ids must run 0..<\(tokens.count) without gaps)")
        }
        self.init(tokens: tokens.map { $0! })
    }

    /// Reads `vocab.txt`: one token per line, the line number is the id.
    public convenience init(contentsOf url: URL) throws {
        let data: Data
        do {
            data = try Data(contentsOf: url)
        } catch {
            if !FileManager.default.fileExists(atPath: url.path) { throw TokenizerError.fileNotFound(url.path) }
            throw TokenizerError.unreadable(url.path, fileErrorReason(error, path: url.path))
        }
        guard String(data: data, encoding: .utf8) != nil else {
            throw TokenizerError.malformed(url.path, "not valid UTF-8")
        }
        // Lines end at LF or CRLF (split on bytes: Swift reads "\r\n" as one Character, and a
        // CRLF file would be one token); a byte-order mark is not part of the first token; trailing
        // whitespace is not part of a token (as the Hugging Face loaders read it).
        var bytes = [UInt8](data)
        if bytes.starts(with: [0xEF, 0xBB, 0xBF]) { bytes.removeFirst(3) }
        var lines = bytes.split(separator: 0x0A, omittingEmptySubsequences: false).map { line -> String in
            var s = Substring(decoding: line, as: UTF8.self)
            while let last = s.unicodeScalars.last, last.properties.isWhitespace {
                s = Substring(s.unicodeScalars.dropLast())
            }
            return String(s)
        }
        if lines.last == "" { lines.removeLast() }
        guard !lines.isEmpty else { throw TokenizerError.malformed(url.path, "the vocabulary is empty") }
        self.init(tokens: lines)
    }

    public var count: Int { tokens.count }

    public func id(of token: String) -> Int32? { ids[UTF8Key(token)] }

    public func token(of id: Int32) -> String? {
        id >= 0 && Int(id) < tokens.count ? tokens[Int(id)] : nil
    }

    /// Writes `vocab.txt`.
    public func write(to url: URL) throws {
        try (tokens.joined(separator: "\n") + "\n").write(to: url, atomically: true, encoding: .utf8)
    }
}
