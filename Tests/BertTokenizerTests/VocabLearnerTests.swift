import Foundation
import Testing
import BertTokenizer

/// The prose corpora that scripts/prepare-test-data.sh puts under .cache/corpus.
private enum VocabCorpus {
    static let folder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent(".cache/corpus")
    static let required = ProcessInfo.processInfo.environment["BERT_REQUIRE_FIXTURES"] == "1"

    static func url(_ name: String) -> URL { folder.appendingPathComponent(name) }
    static func exists(_ name: String) -> Bool { FileManager.default.fileExists(atPath: url(name).path) }
    /// Run the corpus tests when the corpus is there, or when it must be (then they fail).
    static func enabled(_ name: String) -> Bool { required || exists(name) }

    /// The first `bytes` bytes of a corpus, cut after the last whole line.
    static func slice(_ name: String, bytes: Int) throws -> String {
        guard exists(name) else {
            Issue.record("\(url(name).path) is missing: run scripts/prepare-test-data.sh")
            throw TokenizerError.fileNotFound(url(name).path)
        }
        let handle = try FileHandle(forReadingFrom: url(name))
        defer { try? handle.close() }
        var data = try handle.read(upToCount: bytes) ?? Data()
        if data.count == bytes, let nl = data.lastIndex(of: UInt8(ascii: "\n")) { data = data[..<nl] }
        return String(decoding: data, as: UTF8.self)
    }
}

/// The normalized words of a text, as the learner counts them.
private func words(_ text: String, _ normalizer: NormalizerOptions) -> [[UInt8]] {
    let splitter = try! BertTokenizer(
        vocabulary: Vocabulary(tokens: WordPieceLearner.defaultSpecialTokens), normalizer: normalizer)
    var out: [[UInt8]] = []
    splitter.forEachWord(in: text) { out.append(Array($0)) }
    return out
}

private func learn(_ text: String, size: Int, normalizer: NormalizerOptions = .uncased, minFrequency: Int = 2)
    -> WordPieceLearner.Result
{
    var learner = WordPieceLearner(size: size, normalizer: normalizer, minFrequency: minFrequency)
    learner.add(text: text)
    return learner.learnWithDetails()
}

/// Writes the vocabulary to a temporary vocab.txt and loads it back as BERT would.
private func reload(_ vocabulary: Vocabulary, _ normalizer: NormalizerOptions) throws -> BertTokenizer {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("vocab-learner-\(UUID().uuidString).txt")
    defer { try? FileManager.default.removeItem(at: url) }
    try vocabulary.write(to: url)
    return try BertTokenizer(vocabFile: url, normalizer: normalizer)
}

/// Counts the unknown tokens and all tokens of the lines of `text`.
private func tokenize(_ text: String, with tokenizer: BertTokenizer) -> (unknown: Int, tokens: Int) {
    let lines = text.split(separator: "\n").map(String.init)
    let ids = tokenizer.encodeIdsBatch(lines, addSpecialTokens: false)
    let unk = tokenizer.tokenId("[UNK]")!
    return (ids.ids.filter { $0 == unk }.count, ids.ids.count)
}

@Suite("WordPiece vocabulary learner")
struct VocabLearnerTests {
    @Test("Words are counted after BERT's normalization and pre-tokenization")
    func counting() {
        var learner = WordPieceLearner(size: 100)
        learner.add(text: "Hello, WORLD! héllo [CLS] 你好")
        // hello , world ! hello 你 好 ([CLS] is a special token, not a word)
        #expect(learner.wordCount == 7)
        #expect(learner.distinctWordCount == 6)
        var cased = WordPieceLearner(size: 100, normalizer: .cased)
        cased.add(text: "Hello, WORLD! héllo")
        #expect(cased.wordCount == 5)
        #expect(cased.distinctWordCount == 5)
        let tokens = cased.learn().tokens
        for c in ["H", "##H", "é", "##é", "W", "##W", "!", "##!"] { #expect(tokens.contains(c)) }
    }

    @Test("forEachWord gives every word, also those that are vocabulary tokens as a whole")
    func wordsOfATokenizerWithARealVocabulary() throws {
        let tokenizer = try BertTokenizer(
            vocabulary: Vocabulary(tokens: WordPieceLearner.defaultSpecialTokens + ["the", "cat", "sat"]))
        var got: [String] = []
        tokenizer.forEachWord(in: "The cat, sat on [MASK] mats.") { got.append(String(decoding: $0, as: UTF8.self)) }
        #expect(got == ["the", "cat", ",", "sat", "on", "mats", "."])
    }

    @Test(
        "Learned from real English text: exact size, specials first, whole alphabet, no duplicates",
        .enabled(if: VocabCorpus.enabled("en.txt")))
    func shape() throws {
        let text = try VocabCorpus.slice("en.txt", bytes: 300_000)
        let result = learn(text, size: 3000)
        let tokens = result.vocabulary.tokens
        #expect(tokens.count == 3000)
        #expect(Array(tokens.prefix(5)) == WordPieceLearner.defaultSpecialTokens)
        #expect(Set(tokens.map { Array($0.utf8) }).count == tokens.count, "duplicate tokens")
        let present = Set(tokens.map { Array($0.utf8) })
        var characters = Set<String>()
        for word in words(text, .uncased) {
            for scalar in String(decoding: word, as: UTF8.self).unicodeScalars { characters.insert(String(scalar)) }
        }
        #expect(result.alphabetSize == 2 * characters.count)
        let missing = characters.filter {
            !present.contains(Array($0.utf8)) || !present.contains(Array(("##" + $0).utf8))
        }
        #expect(missing.isEmpty, "characters missing: \(missing.sorted())")
        // The alphabet comes right after the specials, the merged tokens after it.
        let alphabet = tokens[5..<(5 + result.alphabetSize)]
        #expect(
            alphabet.allSatisfy { $0.unicodeScalars.count == 1 || ($0.hasPrefix("##") && $0.unicodeScalars.count == 3) }
        )
        #expect(
            tokens[(5 + result.alphabetSize)...].allSatisfy {
                $0.unicodeScalars.count - ($0.hasPrefix("##") ? 2 : 0) >= 2
            })
        #expect(result.merges.count >= 3000 - 5 - result.alphabetSize)
    }

    @Test(
        "Reloaded from vocab.txt, the vocabulary tokenizes its corpus with no [UNK]",
        .enabled(if: VocabCorpus.enabled("en.txt") && VocabCorpus.enabled("zh.txt")),
        arguments: [("en.txt", NormalizerOptions.uncased), ("en.txt", .cased), ("zh.txt", .uncased)])
    func noUnknown(corpus: String, normalizer: NormalizerOptions) throws {
        let text = try VocabCorpus.slice(corpus, bytes: 300_000)
        let result = learn(text, size: 4000, normalizer: normalizer)
        #expect(result.skippedLongWords == 0)
        let tokenizer = try reload(result.vocabulary, normalizer)
        #expect(tokenizer.vocabulary.tokens == result.vocabulary.tokens)
        let counts = tokenize(text, with: tokenizer)
        #expect(counts.tokens > 10_000)
        #expect(counts.unknown == 0)
    }

    @Test("Merges are scored by likelihood, not by frequency")
    func likelihood() throws {
        // Pair counts: (t,##h) 10, (t,##a) 10, (a,##h) 10, (q,##u) 3. Unit counts: t 20, ##h 20,
        // a 10, ##a 10, q 3, ##u 3. Scores: th 10/400, ta 10/200, ah 10/200, qu 3/9.
        // By frequency th, ta or ah would come first; by likelihood qu does, then ah (ties with
        // ta at score and frequency; "a" < "t"), then, with a and ##h down to 0 and 10, ta and
        // th tie at 10/200 ("##a" < "##h").
        let text =
            Array(repeating: "th", count: 10).joined(separator: " ") + " "
            + Array(repeating: "ta", count: 10).joined(separator: " ") + " "
            + Array(repeating: "ah", count: 10).joined(separator: " ") + " qu qu qu"
        let result = learn(text, size: 100)
        #expect(result.merges.map(\.token) == ["qu", "ah", "ta", "th"])
        let first = try #require(result.merges.first)
        #expect(first.left == "q" && first.right == "##u" && first.frequency == 3 && first.score == 3.0 / 9.0)
        #expect(result.merges[1].score == 0.05)
        #expect(
            result.vocabulary.tokens == WordPieceLearner.defaultSpecialTokens
                + ["a", "h", "q", "t", "u", "##a", "##h", "##q", "##t", "##u", "qu", "ah", "ta", "th"])
        // --min-frequency: a pair seen 3 times is not merged at 4.
        #expect(learn(text, size: 100, minFrequency: 4).merges.map(\.token) == ["ah", "ta", "th"])
    }

    @Test("Merged units keep the left unit's ##, lose the right unit's; merging goes on to whole words")
    func mergeForms() {
        let text = Array(repeating: "xabc yabc zbc wab", count: 5).joined(separator: " ")
        let result = learn(text, size: 1000)
        let tokens = result.vocabulary.tokens
        #expect(Set(tokens).count == tokens.count)
        for merge in result.merges {
            #expect(merge.right.hasPrefix("##"))
            #expect(merge.token == merge.left + merge.right.dropFirst(2))
        }
        // Every pair is seen 5 times: each word ends as one token.
        for word in ["xabc", "yabc", "zbc", "wab"] { #expect(tokens.contains(word)) }
        #expect(!tokens.contains { $0.dropFirst(2).contains("#") })
    }

    @Test(
        "Two runs, and the same text given line by line or as a file, learn the same vocabulary",
        .enabled(if: VocabCorpus.enabled("en.txt")))
    func determinism() throws {
        let text = try VocabCorpus.slice("en.txt", bytes: 100_000)
        let first = learn(text, size: 2500)
        let second = learn(text, size: 2500)
        #expect(first.vocabulary.count == 2500)
        #expect(first.vocabulary.tokens == second.vocabulary.tokens)
        #expect(first.merges == second.merges)

        var byLine = WordPieceLearner(size: 2500)
        for line in text.split(separator: "\n", omittingEmptySubsequences: false) { byLine.add(text: String(line)) }
        #expect(byLine.learn().tokens == first.vocabulary.tokens)

        let url = FileManager.default.temporaryDirectory.appendingPathComponent(
            "vocab-learner-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try text.write(to: url, atomically: true, encoding: .utf8)
        var byFile = WordPieceLearner(size: 2500)
        try byFile.add(file: url)
        #expect(byFile.learn().tokens == first.vocabulary.tokens)
        #expect(byFile.wordCount == words(text, .uncased).count)
    }

    @Test("A larger vocabulary splits words into fewer pieces", .enabled(if: VocabCorpus.enabled("en.txt")))
    func piecesPerWord() throws {
        let text = try VocabCorpus.slice("en.txt", bytes: 300_000)
        let wordCount = Double(words(text, .uncased).count)
        var perWord: [Double] = []
        // 300 KB of this text has merges for about 6,300 tokens.
        for size in [1000, 3000, 6000] {
            let result = learn(text, size: size)
            #expect(result.vocabulary.count == size)
            let counts = tokenize(text, with: try reload(result.vocabulary, .uncased))
            #expect(counts.unknown == 0)
            perWord.append(Double(counts.tokens) / wordCount)
        }
        #expect(perWord[1] < perWord[0] && perWord[2] < perWord[1], "pieces per word: \(perWord)")
        #expect(perWord[2] < 1.1, "pieces per word with 6000 tokens: \(perWord[2])")
        #expect(perWord[0] > 1.2, "pieces per word with 1000 tokens: \(perWord[0])")
    }

    @Test(
        "The incremental learner gives what recounting every pair at every step gives",
        .enabled(if: VocabCorpus.enabled("en.txt")))
    func matchesNaive() throws {
        let text = try VocabCorpus.slice("en.txt", bytes: 12_000)
        let result = learn(text, size: 100_000)
        let naive = naiveLearn(words(text, .uncased), minFrequency: 2)
        #expect(naive.count > 500)
        #expect(result.merges.count == naive.count)
        #expect(result.merges.map(\.token) == naive.map(\.token))
        #expect(result.merges.map(\.left) == naive.map(\.left))
        #expect(result.merges.map(\.frequency) == naive.map(\.frequency))
    }

    @Test("A size below the specials and the alphabet learns just those")
    func sizeBelowAlphabet() {
        let result = learn("hello world, hello there", size: 6)
        #expect(result.alphabetExceedsSize)
        #expect(result.merges.isEmpty)
        #expect(result.vocabulary.count == 5 + result.alphabetSize)
        // Specials that are also characters are listed once.
        var learner = WordPieceLearner(size: 10, specialTokens: ["[UNK]", "[CLS]", "[SEP]", "h", "[UNK]"])
        learner.add(text: "hh")
        #expect(learner.learn().tokens == ["[UNK]", "[CLS]", "[SEP]", "h", "##h"])
    }

    @Test("Missing, unreadable and invalid UTF-8 files")
    func files() throws {
        var learner = WordPieceLearner(size: 100)
        let missing = "/nonexistent/corpus-\(UUID().uuidString).txt"
        #expect(throws: TokenizerError.fileNotFound(missing)) { try learner.add(file: URL(fileURLWithPath: missing)) }
        let folder = FileManager.default.temporaryDirectory
        #expect(throws: TokenizerError.unreadable(folder.path, "it is a directory")) { try learner.add(file: folder) }

        let url = folder.appendingPathComponent("vocab-learner-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try Data([0x61, 0x62, 0xFF, 0x63, 0x0A, 0x61, 0x62]).write(to: url)  // "ab\xFFc\nab" (no final newline)
        try learner.add(file: url)
        #expect(learner.invalidUTF8Sources == [url.path])
        #expect(learner.wordCount == 2)
        let tokens = learner.learn().tokens
        // U+FFFD is removed by BERT's clean_text: "abc" and "ab".
        #expect(tokens.contains("ab"))
        #expect(!tokens.contains("\u{FFFD}"))
    }

    @Test("Cased learning keeps case and accents; uncased folds them")
    func casing() {
        let text = "Émile Émile émile"
        let cased = learn(text, size: 100, normalizer: .cased).vocabulary.tokens
        let uncased = learn(text, size: 100, normalizer: .uncased).vocabulary.tokens
        #expect(cased.contains("É") && cased.contains("Émile"))
        #expect(!uncased.contains("É") && !uncased.contains("é") && uncased.contains("emile"))
    }
}

/// The definition, computed the slow way: every pair recounted at every step.
private func naiveLearn(_ words: [[UInt8]], minFrequency: Int) -> [(left: String, token: String, frequency: Int)] {
    var counts: [[UInt8]: Int] = [:]
    var order: [[UInt8]] = []
    for w in words where w.count > 0 {
        if counts[w] == nil { order.append(w) }
        counts[w, default: 0] += 1
    }
    var split: [([[UInt8]], Int)] = order.map { w in
        let units = String(decoding: w, as: UTF8.self).unicodeScalars.enumerated().map { k, s in
            Array(((k == 0 ? "" : "##") + String(s)).utf8)
        }
        return (units, counts[w]!)
    }
    var merges: [(left: String, token: String, frequency: Int)] = []
    while true {
        var pairFreq: [[UInt8]: (a: [UInt8], b: [UInt8], p: Int)] = [:]
        var unitFreq: [[UInt8]: Int] = [:]
        for (units, c) in split {
            for u in units { unitFreq[u, default: 0] += c }
            for i in units.indices.dropLast() {
                let key = units[i] + [0] + units[i + 1]
                pairFreq[key, default: (units[i], units[i + 1], 0)].p += c
            }
        }
        var best: (a: [UInt8], b: [UInt8], p: Int, q: Int)? = nil
        for (_, v) in pairFreq where v.p >= minFrequency {
            let q = unitFreq[v.a]! * unitFreq[v.b]!
            guard let cur = best else { best = (v.a, v.b, v.p, q); continue }
            let l = v.p.multipliedFullWidth(by: cur.q), r = cur.p.multipliedFullWidth(by: q)
            let better =
                (l.high, l.low) != (r.high, r.low)
                ? (l.high, l.low) > (r.high, r.low)
                : v.p != cur.p
                    ? v.p > cur.p
                    : v.a != cur.a ? v.a.lexicographicallyPrecedes(cur.a) : v.b.lexicographicallyPrecedes(cur.b)
            if better { best = (v.a, v.b, v.p, q) }
        }
        guard let best else { break }
        let merged = best.a + best.b.dropFirst(2)
        merges.append((String(decoding: best.a, as: UTF8.self), String(decoding: merged, as: UTF8.self), best.p))
        for k in split.indices {
            var units = split[k].0
            var out: [[UInt8]] = []
            var i = 0
            while i < units.count {
                if i + 1 < units.count && units[i] == best.a && units[i + 1] == best.b {
                    out.append(merged); i += 2
                } else {
                    out.append(units[i]); i += 1
                }
            }
            units = out
            split[k].0 = units
        }
    }
    return merges
}

@Suite("Merge scoring") struct MergeScoringTests {
    /// Likelihood scoring (WordPiece's) merges frequent letters last, so "the" stays in pieces at
    /// 4k tokens; frequency scoring (BPE-style, as tokenizers' trainer) keeps it whole. Both
    /// tokenize their corpus without [UNK].
    @Test(.enabled(if: VocabCorpus.enabled("en.txt")))
    func frequencyScoringKeepsFrequentWordsWhole() throws {
        let text = try VocabCorpus.slice("en.txt", bytes: 1_000_000)
        var pieces: [MergeScoring: [String]] = [:]
        for scoring in MergeScoring.allCases {
            var learner = WordPieceLearner(size: 4000)
            learner.scoring = scoring
            learner.add(text: text)
            let vocabulary = learner.learn()
            #expect(vocabulary.count == 4000)
            let tokenizer = try BertTokenizer(vocabulary: vocabulary)
            pieces[scoring] = tokenizer.tokens(
                tokenizer.encodeIds("the function returns the value", addSpecialTokens: false))
            let ids = tokenizer.encodeIdsBatch(text.split(separator: "\n").map(String.init), addSpecialTokens: false)
            #expect(!ids.ids.contains(tokenizer.tokenId("[UNK]")!), "\(scoring): [UNK] in its own corpus")
        }
        #expect(pieces[.frequency] == ["the", "function", "returns", "the", "value"], "\(pieces[.frequency]!)")
        #expect(pieces[.likelihood]!.count > 5, "\(pieces[.likelihood]!)")
    }
}
