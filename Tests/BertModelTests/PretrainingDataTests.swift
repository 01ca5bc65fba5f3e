import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// The data rules of pretraining, measured over many instances of real prose.
@Suite(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the MiniLM tokenizer and the corpus"))
struct PretrainingDataTests {
    let tokenizer: BertTokenizer
    let documents: [[[Int32]]]

    init() throws {
        tokenizer = try BertTokenizer(modelFolder: ModelFixtures.miniLMFolder)
        // Paragraphs of the English corpus, one per line, split into sentences; 20 paragraphs
        // make a document (blank lines between documents).
        let text = try String(
            contentsOf: ModelFixtures.packageRoot.appendingPathComponent(".cache/corpus/en.txt"), encoding: .utf8)
        let paragraphs = text.components(separatedBy: "\n\n").prefix(6000).map {
            $0.replacingOccurrences(of: "\n", with: " ")
        }
        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "pretraining-data-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        let docs = stride(from: 0, to: paragraphs.count, by: 20).map {
            paragraphs[$0..<min(paragraphs.count, $0 + 20)].joined(separator: "\n")
        }
        try docs.joined(separator: "\n\n").write(to: url, atomically: true, encoding: .utf8)
        documents = try readDocuments(files: [url], tokenizer: tokenizer, splitSentences: true)
    }

    func build(_ options: PretrainingDataOptions, seed: UInt64) throws -> (
        PretrainingDataBuilder, [PretrainingInstance]
    ) {
        let builder = try PretrainingDataBuilder(tokenizer: tokenizer, options: options)
        var rng = SeededRandom(seed: seed)
        var all: [PretrainingInstance] = []
        for d in documents.indices { all += builder.instances(document: d, of: documents, rng: &rng) }
        return (builder, all)
    }

    @Test func instancesFollowTheRules() throws {
        #expect(documents.count > 200)
        let (builder, instances) = try build(PretrainingDataOptions(), seed: 1)
        #expect(instances.count > 1000)
        let nsp = Double(instances.filter(\.isRandomNext).count) / Double(instances.count)
        // Half of the multi-sentence chunks get a random B; a chunk of one sentence (a long
        // sentence, a document's last one) always does, as in the reference: a little over 50%.
        #expect(nsp > 0.47 && nsp < 0.62, "NotNext share \(nsp)")
        for inst in instances {
            #expect(inst.tokens.count <= 128)
            #expect(inst.tokens.first == builder.cls && inst.tokens.last == builder.sep)
            #expect(inst.tokens.filter { $0 == builder.sep }.count == 2)
            let firstSep = inst.tokens.firstIndex(of: builder.sep)!
            #expect(
                inst.segmentIds[...firstSep].allSatisfy { $0 == 0 }
                    && inst.segmentIds[(firstSep + 1)...].allSatisfy { $0 == 1 })
        }
        let short = instances.filter { $0.tokens.count < 64 }.count
        #expect(short > 0, "short_seq_prob gives some short instances")
        let (_, again) = try build(PretrainingDataOptions(), seed: 1)
        #expect(again == instances, "the same seed gives the same instances")
    }

    @Test func maskingProportions() throws {
        let (builder, instances) = try build(PretrainingDataOptions(), seed: 2)
        var rng = SeededRandom(seed: 3)
        var chosen = 0, eligible = 0, masked = 0, kept = 0, random = 0
        for inst in instances {
            let m = builder.mask(inst, rng: &rng)
            let nonSpecial = inst.tokens.filter { $0 != builder.cls && $0 != builder.sep }.count
            eligible += nonSpecial
            for i in m.labels.indices where m.labels[i] != -100 {
                #expect(
                    inst.tokens[i] != builder.cls && inst.tokens[i] != builder.sep, "special tokens are never chosen")
                #expect(m.labels[i] == inst.tokens[i])
                chosen += 1
                if m.tokens[i] == builder.mask {
                    masked += 1
                } else if m.tokens[i] == inst.tokens[i] {
                    kept += 1
                } else {
                    random += 1
                }
            }
            let count = m.labels.filter { $0 != -100 }.count
            #expect(count <= 20 && count == min(20, max(1, Int((Double(inst.tokens.count) * 0.15).rounded()))))
            for i in m.labels.indices where m.labels[i] == -100 { #expect(m.tokens[i] == inst.tokens[i]) }
        }
        let share = Double(chosen) / Double(eligible)
        #expect(share > 0.12 && share < 0.17, "chosen share \(share)")
        let n = Double(chosen)
        // Binomial bounds: 5 standard deviations.
        func within(_ count: Int, _ p: Double) -> Bool {
            abs(Double(count) - n * p) <= 5 * (n * p * (1 - p)).squareRoot() + 1
        }
        // A random replacement can hit the original token (rarely): count it with "kept".
        #expect(within(masked, 0.8), "masked \(masked) of \(chosen)")
        #expect(within(kept + random, 0.2) && within(random, 0.1), "kept \(kept), random \(random) of \(chosen)")
    }

    @Test func wholeWordMaskingMasksWholeWords() throws {
        var options = PretrainingDataOptions()
        options.wholeWordMask = true
        let (builder, instances) = try build(options, seed: 4)
        var rng = SeededRandom(seed: 5)
        var multiPieceWords = 0
        for inst in instances.prefix(2000) {
            let m = builder.mask(inst, rng: &rng)
            let pieces = tokenizer.tokens(inst.tokens)
            for i in 1..<pieces.count
            where pieces[i].hasPrefix("##") && pieces[i - 1] != "[CLS]" && pieces[i - 1] != "[SEP]" {
                // A continuation piece is chosen exactly when the piece before it is.
                #expect((m.labels[i] == -100) == (m.labels[i - 1] == -100), "\(pieces[i - 1]) \(pieces[i])")
                if m.labels[i] != -100 { multiPieceWords += 1 }
            }
        }
        #expect(multiPieceWords > 50)
    }

    @Test func sentenceSplitter() {
        #expect(
            splitIntoSentences("It works. Mr. Smith agrees, e.g. here. Does it? Yes! 3 more.") == [
                "It works.", "Mr. Smith agrees, e.g. here.", "Does it?", "Yes!", "3 more.",
            ])
        #expect(splitIntoSentences("第一句。第二句！") == ["第一句。", "第二句！"])
        #expect(splitIntoSentences("version 3.11 is out") == ["version 3.11 is out"])
    }
}
