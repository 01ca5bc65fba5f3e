import ArgumentParser
import Bert
import BertHub
import BertCompute
import BertTokenizer
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the encoding of each input line (UTF-8 lines from files or stdin).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case ids, tokens, json }

    @Option(
        name: .long,
        help:
            "A model folder (tokenizer.json or vocab.txt, tokenizer_config.json), or a Hugging Face model id (ORG/NAME)."
    )
    var model: String?
    @OptionGroup var hub: RevisionOption

    @Option(name: .long, help: "A vocab.txt (uncased BERT settings unless --cased).")
    var vocab: String?

    @Flag(name: .long, help: "Keep case and accents (no lowercasing, no accent stripping).")
    var cased = false

    @Flag(name: .long, help: "Each line is A<TAB>B: encode the pair; prints 'ids | type_ids'.")
    var pair = false

    @Option(name: .long, help: "Truncate to N tokens (longest_first), special tokens included.")
    var maxLength: Int?

    @Option(name: .long, help: "ids, tokens or json (ids, tokens, type ids, offsets in Unicode scalars).")
    var format: Format = .ids

    @OptionGroup var threads: ThreadOption

    @Argument(help: "Input files (default: stdin).")
    var files: [String] = []

    func validate() throws {
        if (model == nil) == (vocab == nil) { throw ValidationError("give exactly one of --model DIR or --vocab FILE") }
        if let m = maxLength, m < 1 { throw ValidationError("--max-length must be at least 1") }
    }

    func run() throws {
        var tokenizer: BertTokenizer
        if let model {
            tokenizer = try BertTokenizer(modelFolder: hub.folder(model, files: .tokenizer))
        } else {
            tokenizer = try BertTokenizer(vocabFile: URL(fileURLWithPath: vocab!))
        }

        if cased { tokenizer.normalizer.lowercase = false; tokenizer.normalizer.stripAccents = false }
        tokenizer.padding = nil
        tokenizer.truncation = maxLength.map { Truncation(maxLength: $0, strategy: .longestFirst) }
        // Below the special tokens `tokenizers` truncates nothing (its limit wraps around): say so
        // instead of printing untruncated encodings.
        let specials = tokenizer.postProcessor?.addedTokens(pair: pair) ?? 0
        if let m = maxLength, m < specials {
            throw CLIError("--max-length \(m) leaves no room: each encoding has \(specials) special tokens")
        }

        let out = Output()
        let decimal = DecimalIds(count: tokenizer.vocabulary.count)
        if format == .ids && !pair { return try writeIds(tokenizer, decimal, out) }
        var reader = LineReader(paths: files)
        var lineNumber = 0
        try reader.forEachBatch { lines in
            // A full encoding takes about 45 bytes per input byte (ids, offsets, word ids, the
            // rendering): a bound per line keeps one huge line from taking gigabytes.
            if let long = lines.firstIndex(where: { $0.utf8.count > Self.maxLineBytes }) {
                throw CLIError(
                    "line \(lineNumber + long + 1) has \(lines[long].utf8.count) bytes, more than the \(Self.maxLineBytes) "
                        + "that --format tokens/json and --pair take (--format ids has no limit)")
            }
            let encodings: [Encoding]
            if pair {
                var a: [String] = [], b: [String] = []
                for line in lines {
                    lineNumber += 1
                    guard let tab = line.firstIndex(of: "\t") else {
                        throw CLIError("line \(lineNumber): --pair needs A<TAB>B, found no tab")
                    }
                    a.append(String(line[..<tab]))
                    b.append(String(line[line.index(after: tab)...]))
                }
                encodings = try tokenizer.encodeBatch(a, pairs: b, threads: threads.threads)
            } else {
                encodings = try tokenizer.encodeBatch(lines, threads: threads.threads)
                lineNumber += lines.count
            }
            for e in encodings { out.withBuffer { render(e, tokenizer, decimal, into: &$0) } }
        }
        out.flush()
    }

    /// The longest line the full-encoding formats take.
    static let maxLineBytes = 4 << 20

    /// Ids of single texts, at the library's speed: blocks of input bytes straight into the
    /// tokenizer (no String per line), ids written from a table of their decimal forms.
    private func writeIds(_ tokenizer: BertTokenizer, _ decimal: DecimalIds, _ out: Output) throws {
        var blocks = LineBlocks(paths: files)
        try blocks.forEach { text, lines in
            let ragged = tokenizer.encodeIdsBatch(utf8: text, lines: lines, threads: threads.threads)
            decimal.write(ragged, to: out)
        }
        out.flush()
    }

    private func render(_ e: Encoding, _ tokenizer: BertTokenizer, _ decimal: DecimalIds, into out: inout [UInt8]) {
        func list(_ values: [Int32], separator: UInt8) {
            for (k, v) in values.enumerated() {
                if k > 0 { out.append(separator) }
                decimal.append(v, to: &out)
            }
        }
        switch format {
        case .ids, .tokens:
            if format == .ids {
                list(e.ids, separator: UInt8(ascii: " "))
            } else {
                for (k, t) in tokenizer.tokens(e.ids).enumerated() {
                    if k > 0 { out.append(UInt8(ascii: " ")) }
                    out.append(contentsOf: t.utf8)
                }
            }
            if pair {
                out.append(contentsOf: " | ".utf8)
                list(e.typeIds, separator: UInt8(ascii: " "))
            }
        case .json:
            // {"ids":[...],"offsets":[[s,e],...],"tokens":[...],"type_ids":[...]}: the keys sorted,
            // as JSONSerialization with .sortedKeys wrote them.
            out.append(contentsOf: #"{"ids":["#.utf8)
            list(e.ids, separator: UInt8(ascii: ","))
            out.append(contentsOf: #"],"offsets":["#.utf8)
            for (k, o) in e.offsets.enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                out.append(UInt8(ascii: "["))
                decimal.append(Int32(o.start), to: &out)
                out.append(UInt8(ascii: ","))
                decimal.append(Int32(o.end), to: &out)
                out.append(UInt8(ascii: "]"))
            }
            out.append(contentsOf: #"],"tokens":["#.utf8)
            for (k, t) in tokenizer.tokens(e.ids).enumerated() {
                if k > 0 { out.append(UInt8(ascii: ",")) }
                appendJSONString(t, to: &out)
            }
            out.append(contentsOf: #"],"type_ids":["#.utf8)
            list(e.typeIds, separator: UInt8(ascii: ","))
            out.append(contentsOf: "]}".utf8)
        }
        out.append(UInt8(ascii: "\n"))
    }
}

/// The decimal forms of the ids 0..<count in one table (an id is a copy of at most 7 bytes),
/// other numbers digit by digit.
struct DecimalIds {
    private var digits: [UInt8] = []
    private var lengths: [UInt8] = []
    private static let slot = 8

    init(count: Int) {
        let n = max(0, min(count, 1 << 20))
        digits = [UInt8](repeating: 0, count: n * Self.slot)
        lengths = [UInt8](repeating: 0, count: n)
        var scratch: [UInt8] = []
        for id in 0..<n {
            scratch.removeAll(keepingCapacity: true)
            Self.appendDigits(id, to: &scratch)
            for (k, b) in scratch.enumerated() { digits[id * Self.slot + k] = b }
            lengths[id] = UInt8(scratch.count)
        }
    }

    /// Every row of `ragged` as a line of space-separated ids, written straight into the output's
    /// buffer (at most a slot and a separator per id), a few thousand rows at a time.
    func write(_ ragged: RaggedIds, to out: Output) {
        ragged.ids.withUnsafeBufferPointer { ids in
            digits.withUnsafeBufferPointer { table in
                lengths.withUnsafeBufferPointer { lens in
                    var row = 0
                    while row < ragged.count {
                        let last = min(ragged.count, row + 4096)
                        let first = row == 0 ? 0 : ragged.rowEnds[row - 1]
                        let bound = (ragged.rowEnds[last - 1] - first) * (Self.slot + 12) + (last - row)
                        out.withRoom(bound) { q in
                            var w = 0
                            var start = first
                            for r in row..<last {
                                let end = ragged.rowEnds[r]
                                for k in start..<end {
                                    if k > start { q[w] = UInt8(ascii: " "); w += 1 }
                                    let v = Int(ids[k])
                                    if v >= 0 && v < lens.count {
                                        // The whole 8-byte slot is copied; only its length counts.
                                        UnsafeMutableRawPointer(q + w).copyMemory(
                                            from: table.baseAddress! + v * Self.slot, byteCount: Self.slot)
                                        w += Int(lens[v])
                                    } else {
                                        var other: [UInt8] = []
                                        Self.appendDigits(v, to: &other)
                                        for b in other { q[w] = b; w += 1 }
                                    }
                                }
                                q[w] = UInt8(ascii: "\n")
                                w += 1
                                start = end
                            }
                            return w
                        }
                        row = last
                    }
                }
            }
        }
    }

    @inline(__always)
    func append(_ value: Int32, to out: inout [UInt8]) {
        let v = Int(value)
        if v >= 0 && v < lengths.count {
            digits.withUnsafeBufferPointer { d in
                out.append(
                    contentsOf: UnsafeBufferPointer(rebasing: d[(v * Self.slot)..<(v * Self.slot + Int(lengths[v]))]))
            }
        } else {
            Self.appendDigits(v, to: &out)
        }
    }

    static func appendDigits(_ value: Int, to out: inout [UInt8]) {
        if value < 0 { out.append(UInt8(ascii: "-")) }
        var v = value.magnitude
        var tmp:
            (
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8,
                UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8, UInt8
            ) =
                (0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0)
        var n = 0
        withUnsafeMutableBytes(of: &tmp) { t in
            repeat {
                t[n] = UInt8(ascii: "0") + UInt8(v % 10)
                v /= 10
                n += 1
            } while v > 0
            for k in stride(from: n - 1, through: 0, by: -1) { out.append(t[k]) }
        }
    }
}

/// A JSON string literal of `s`: quotes, backslashes and control characters escaped.
func appendJSONString(_ s: String, to out: inout [UInt8]) {
    out.append(UInt8(ascii: "\""))
    for b in s.utf8 {
        switch b {
        case UInt8(ascii: "\""): out.append(contentsOf: #"\""#.utf8)
        case UInt8(ascii: "\\"): out.append(contentsOf: #"\\"#.utf8)
        case 0x0A: out.append(contentsOf: #"\n"#.utf8)
        case 0x0D: out.append(contentsOf: #"\r"#.utf8)
        case 0x09: out.append(contentsOf: #"\t"#.utf8)
        case 0..<0x20:
            let hex = Array("0123456789abcdef".utf8)
            out.append(contentsOf: #"\u00"#.utf8)
            out.append(hex[Int(b >> 4)])
            out.append(hex[Int(b & 15)])
        default: out.append(b)
        }
    }
    out.append(UInt8(ascii: "\""))
}
