import ArgumentParser
import Bert
import BertCompute
import BertTokenizer
import Foundation

struct LearnVocab: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "vocab",
        abstract: "Learn a WordPiece vocabulary from a corpus.",
        discussion: """
            Words are counted after BERT's normalization and pre-tokenization (uncased unless \
            --cased); pairs of word pieces are merged by likelihood, freq(ab) / (freq(a) freq(b)), \
            as Google's WordPiece does. The vocabulary holds the special tokens, every character \
            of the corpus (as "c" and "##c"), then the merged tokens in the order learned: \
            loaded with the same casing it tokenizes its corpus without [UNK].
            """)

    @Option(name: .long, help: "The number of tokens to learn, special tokens included.")
    var size: Int

    @Option(name: .long, help: "Where to write the vocabulary (vocab.txt: one token per line).")
    var out: String
    @Flag(name: .long, help: "Replace the --out file when it exists.") var overwrite = false

    @Flag(name: .long, help: "Keep case and accents (a cased model); default: uncased.")
    var cased = false

    @Option(name: .long, help: "Pairs seen fewer times are never merged.")
    var minFrequency: Int = 2

    @Option(
        name: .long,
        help: ArgumentHelp(
            "Merge ranking: likelihood (WordPiece's count(ab)/(count(a)count(b))) or frequency (most frequent pair "
                + "first, as tokenizers' WordPieceTrainer).")
    )
    var scoring: MergeScoring = .likelihood

    @Option(name: .long, help: "Comma-separated special tokens, first in the vocabulary.")
    var specialTokens: String = WordPieceLearner.defaultSpecialTokens.joined(separator: ",")

    @Argument(help: "UTF-8 text files (default: stdin).")
    var files: [String] = []

    var specials: [String] {
        specialTokens.split(separator: ",", omittingEmptySubsequences: true)
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
    }

    func validate() throws {
        if size < 1 { throw ValidationError("--size must be at least 1") }
        if minFrequency < 1 { throw ValidationError("--min-frequency must be at least 1") }
        if let bad = specials.first(where: { $0.unicodeScalars.contains { $0.properties.isWhitespace } }) {
            throw ValidationError("special token \"\(bad)\" contains whitespace")
        }
        if Set(specials).count != specials.count { throw ValidationError("--special-tokens lists a token twice") }
    }

    func run() throws {
        let started = Date()
        // The output place is checked first: a typo in --out should not cost the whole run.
        let outURL = URL(fileURLWithPath: out)
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: out, isDirectory: &isDirectory), isDirectory.boolValue {
            throw CLIError("\(out): is a directory (--out names the vocabulary file)")
        }
        try checkOutputFile(outURL, overwrite: overwrite, inputs: files.map { URL(fileURLWithPath: $0) })
        let folder = outURL.deletingLastPathComponent().path
        guard FileManager.default.fileExists(atPath: folder, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw CLIError("\(out): cannot write: no folder \(folder)")
        }
        var learner = WordPieceLearner(
            size: size, normalizer: cased ? .cased : .uncased,
            minFrequency: minFrequency, specialTokens: specials)
        learner.scoring = scoring
        if files.isEmpty {
            try learner.add(handle: FileHandle.standardInput, source: "<stdin>")
        }
        // Every file is checked before any is read: a typo fails at once, not after minutes.
        for path in files where !FileManager.default.fileExists(atPath: path) {
            throw TokenizerError.fileNotFound(path)
        }
        for path in files { try learner.add(file: URL(fileURLWithPath: path)) }

        for source in learner.invalidUTF8Sources {
            warn("warning: \(source): invalid UTF-8 replaced with U+FFFD")
        }
        for needed in ["[UNK]", "[CLS]", "[SEP]"] where !specials.contains(needed) {
            warn("warning: no \(needed) among the special tokens: BertTokenizer cannot load the vocabulary as is")
        }

        let counted = Date()
        let result = learner.learnWithDetails()
        if result.alphabetExceedsSize {
            warn(
                "warning: --size \(size) is smaller than the \(result.specialTokenCount) special tokens and the "
                    + "\(result.alphabetSize) alphabet tokens (\(result.alphabetSize / 2) characters as \"c\" and "
                    + "\"##c\"): "
                    + "learned just those (\(result.vocabulary.count) tokens)")
        }
        do {
            try result.vocabulary.write(to: outURL)
        } catch {
            throw CLIError("\(out): cannot write: \(fileErrorReason(error, path: outURL.path))")
        }
        let countSeconds = counted.timeIntervalSince(started), seconds = Date().timeIntervalSince(started)
        var summary =
            "\(out): \(result.vocabulary.count) tokens from \(result.wordCount) words "
            + "(\(result.distinctWordCount) distinct), alphabet \(result.alphabetSize) tokens, "
            + "\(result.merges.count) merges, \(String(format: "%.2f", seconds)) s "
            + "(counting \(String(format: "%.2f", countSeconds)) s)"
        if result.skippedLongWords > 0 {
            summary += "; \(result.skippedLongWords) distinct words over 100 characters left out"
        }
        warn(summary)
        if !result.alphabetExceedsSize && result.vocabulary.count < size {
            warn(
                "note: no pair left seen at least \(minFrequency) times: the vocabulary has "
                    + "\(result.vocabulary.count) tokens, not \(size)"
            )
        }
    }
}
