import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

struct Tokenize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the encoding of each input line (UTF-8 lines from files or stdin).")

    enum Format: String, ExpressibleByArgument, CaseIterable { case ids, tokens, json }

    @Option(name: .long, help: "A Hugging Face model folder (tokenizer.json or vocab.txt, tokenizer_config.json).")
    var model: String?

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

    @Argument(help: "Input files (default: stdin).")
    var files: [String] = []

    func validate() throws {
        if (model == nil) == (vocab == nil) { throw ValidationError("give exactly one of --model DIR or --vocab FILE") }
        if let m = maxLength, m < 1 { throw ValidationError("--max-length must be at least 1") }
    }

    func run() throws {
        var tokenizer: BertTokenizer
        if let model {
            tokenizer = try BertTokenizer(modelFolder: URL(fileURLWithPath: model))
        } else {
            tokenizer = try BertTokenizer(vocabFile: URL(fileURLWithPath: vocab!))
        }
        
        if cased { tokenizer.normalizer.lowercase = false; tokenizer.normalizer.stripAccents = false }
        tokenizer.padding = nil
        tokenizer.truncation = maxLength.map { Truncation(maxLength: $0, strategy: .longestFirst) }

        let out = Output()
        var reader = LineReader(paths: files)
        var lineNumber = 0
        try reader.forEachBatch { lines in
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
                encodings = try batch { try tokenizer.encodeBatch(a, pairs: b) }
            } else {
                encodings = try batch { try tokenizer.encodeBatch(lines) }
            }
            for e in encodings { out.write(render(e, tokenizer) + "\n") }
        }
        out.flush()
    }

    private func batch(_ body: () throws -> [Encoding]) throws -> [Encoding] {
        return try body()
    }

    private func render(_ e: Encoding, _ tokenizer: BertTokenizer) -> String {
        switch format {
        case .ids:
            let ids = e.ids.map(String.init).joined(separator: " ")
            return pair ? ids + " | " + e.typeIds.map(String.init).joined(separator: " ") : ids
        case .tokens:
            let tokens = tokenizer.tokens(e.ids).joined(separator: " ")
            return pair ? tokens + " | " + e.typeIds.map(String.init).joined(separator: " ") : tokens
        case .json:
            let object: [String: Any] = [
                "ids": e.ids.map(Int.init),
                "tokens": tokenizer.tokens(e.ids),
                "type_ids": e.typeIds.map(Int.init),
                "offsets": e.offsets.map { [$0.start, $0.end] },
            ]
            let data = try! JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes])
            return String(decoding: data, as: UTF8.self)
        }
    }
}
