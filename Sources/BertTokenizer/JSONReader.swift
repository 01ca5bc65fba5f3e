import Foundation

/// A small JSON reader for tokenizer files. Two reasons not to use Foundation's: object keys
/// are Swift Strings there, so canonically equivalent vocabulary tokens ("K" and KELVIN SIGN)
/// collapse into one key; and building 30k bridged values costs a tenth of a second at start-up.
/// Objects become `[String: Any]`, except the object at `pairsPath` (e.g. model.vocab), which
/// becomes `JSONObjectPairs`: its members in file order with byte-exact keys.
struct JSONReader {
    struct Failure: Error, CustomStringConvertible {
        let description: String
    }

    private let bytes: [UInt8]
    private var i = 0
    private let pairsPath: [String]

    init(_ data: Data, pairsPath: [String]) {
        bytes = [UInt8](data)
        self.pairsPath = pairsPath
    }

    static func parse(_ data: Data, pairsAt pairsPath: [String] = []) throws -> Any {
        var r = JSONReader(data, pairsPath: pairsPath)
        r.skipSpace()
        let v = try r.value(depth: 0, onPath: true)
        r.skipSpace()
        guard r.i == r.bytes.count else { throw r.fail("unexpected text after the value") }
        return v
    }

    private func fail(_ why: String) -> Failure { Failure(description: "\(why) at byte \(i)") }

    private mutating func skipSpace() {
        while i < bytes.count, bytes[i] == 0x20 || bytes[i] == 0x0A || bytes[i] == 0x0D || bytes[i] == 0x09 { i += 1 }
    }

    /// `onPath`: the keys leading here are the first `depth` of `pairsPath` (tracked as a flag, not
    /// a path array: an array per value cost more than the rest of the parse of a vocabulary).
    private mutating func value(depth: Int, onPath: Bool) throws -> Any {
        guard i < bytes.count else { throw fail("unexpected end of data") }
        switch bytes[i] {
        case UInt8(ascii: "{"): return try object(depth: depth, onPath: onPath)
        case UInt8(ascii: "["): return try array(depth: depth)
        case UInt8(ascii: "\""): return try string()
        case UInt8(ascii: "t"): return try literal("true", true)
        case UInt8(ascii: "f"): return try literal("false", false)
        case UInt8(ascii: "n"): return try literal("null", NSNull())
        default: return try number()
        }
    }

    private mutating func literal(_ word: String, _ v: Any) throws -> Any {
        let w = Array(word.utf8)
        guard i + w.count <= bytes.count, Array(bytes[i..<(i + w.count)]) == w else { throw fail("invalid literal") }
        i += w.count
        return v
    }

    private mutating func number() throws -> Any {
        let start = i
        // The common case, a plain integer (every vocabulary id), without making a String.
        var k = i
        let negative = k < bytes.count && bytes[k] == UInt8(ascii: "-")
        if negative { k += 1 }
        var v = 0
        let digitsStart = k
        while k < bytes.count, bytes[k] >= 0x30 && bytes[k] <= 0x39, k - digitsStart < 18 {
            v = v * 10 + Int(bytes[k] - 0x30)
            k += 1
        }
        if k > digitsStart, k == bytes.count || !Self.continuesNumber(bytes[k]) {
            i = k
            return NSNumber(value: negative ? -v : v)
        }
        while i < bytes.count, let c = Optional(bytes[i]),
            (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: "-") || c == UInt8(ascii: "+") || c == UInt8(ascii: ".")
                || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
        { i += 1 }
        let text = String(decoding: bytes[start..<i], as: UTF8.self)
        if let n = Int(text) { return NSNumber(value: n) }
        if let d = Double(text) { return NSNumber(value: d) }
        throw fail("invalid value")
    }

    @inline(__always) private static func continuesNumber(_ c: UInt8) -> Bool {
        (c >= 0x30 && c <= 0x39) || c == UInt8(ascii: ".") || c == UInt8(ascii: "e") || c == UInt8(ascii: "E")
            || c == UInt8(ascii: "+") || c == UInt8(ascii: "-")
    }

    private mutating func array(depth: Int) throws -> Any {
        i += 1
        var out: [Any] = []
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "]") { i += 1; return out }
        while true {
            skipSpace()
            out.append(try value(depth: depth + 1, onPath: false))
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated array") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "]") { i += 1; return out }
            throw fail("expected , or ] in an array")
        }
    }

    private mutating func object(depth: Int, onPath: Bool) throws -> Any {
        i += 1
        let asPairs = onPath && !pairsPath.isEmpty && depth == pairsPath.count
        var dict: [String: Any] = [:]
        var pairs = JSONObjectPairs()
        skipSpace()
        if i < bytes.count, bytes[i] == UInt8(ascii: "}") { i += 1; return asPairs ? pairs : dict }
        while true {
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: "\"") else { throw fail("expected a key") }
            let key = try string()
            skipSpace()
            guard i < bytes.count, bytes[i] == UInt8(ascii: ":") else { throw fail("expected :") }
            i += 1
            skipSpace()
            let v = try value(
                depth: depth + 1, onPath: onPath && depth < pairsPath.count && pairsPath[depth] == key)
            if asPairs {
                pairs.keys.append(key)
                pairs.values.append(v)
            } else {
                dict[key] = v
            }
            skipSpace()
            guard i < bytes.count else { throw fail("unterminated object") }
            if bytes[i] == UInt8(ascii: ",") { i += 1; continue }
            if bytes[i] == UInt8(ascii: "}") { i += 1; return asPairs ? pairs : dict }
            throw fail("expected , or } in an object")
        }
    }

    private mutating func hex4() throws -> UInt32 {
        guard i + 4 <= bytes.count else { throw fail("truncated \\u escape") }
        var v: UInt32 = 0
        for _ in 0..<4 {
            let c = bytes[i]
            let d: UInt8
            switch c {
            case 0x30...0x39: d = c - 0x30
            case 0x41...0x46: d = c - 0x41 + 10
            case 0x61...0x66: d = c - 0x61 + 10
            default: throw fail("invalid \\u escape")
            }
            v = v << 4 | UInt32(d)
            i += 1
        }
        return v
    }

    private mutating func string() throws -> String {
        i += 1
        // Most strings have no escape: validated straight from the file's bytes.
        let start = i
        while i < bytes.count, bytes[i] != UInt8(ascii: "\""), bytes[i] != UInt8(ascii: "\\") { i += 1 }
        if i < bytes.count, bytes[i] == UInt8(ascii: "\"") {
            i += 1
            guard let s = String(validating: bytes[start..<(i - 1)], as: UTF8.self) else {
                throw fail("invalid UTF-8 in a string")
            }
            return s
        }
        var out = Array(bytes[start..<i])
        while true {
            guard i < bytes.count else { throw fail("unterminated string") }
            let c = bytes[i]
            if c == UInt8(ascii: "\"") { i += 1; break }
            if c != UInt8(ascii: "\\") { out.append(c); i += 1; continue }
            guard i + 1 < bytes.count else { throw fail("unterminated string") }
            let e = bytes[i + 1]
            i += 2
            switch e {
            case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"): out.append(e)
            case UInt8(ascii: "b"): out.append(0x08)
            case UInt8(ascii: "f"): out.append(0x0C)
            case UInt8(ascii: "n"): out.append(0x0A)
            case UInt8(ascii: "r"): out.append(0x0D)
            case UInt8(ascii: "t"): out.append(0x09)
            case UInt8(ascii: "u"):
                var v = try hex4()
                if (0xD800..<0xDC00).contains(v), i + 1 < bytes.count, bytes[i] == UInt8(ascii: "\\"),
                    bytes[i + 1] == UInt8(ascii: "u")
                {
                    i += 2
                    let low = try hex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw fail("invalid surrogate pair") }
                    v = 0x10000 + ((v - 0xD800) << 10) + (low - 0xDC00)
                }
                let scalar = Unicode.Scalar(v) ?? "\u{FFFD}"
                out.append(contentsOf: Array(String(scalar).utf8))
            default: throw fail("invalid escape")
            }
        }
        guard let s = String(validating: out, as: UTF8.self) else { throw fail("invalid UTF-8 in a string") }
        return s
    }
}

/// An object's members in file order, keys byte-exact.
struct JSONObjectPairs {
    var keys: [String] = []
    var values: [Any] = []
}
