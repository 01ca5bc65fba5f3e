import Foundation
import Testing
import BertTokenizer

/// Greedy longest-match-first as BERT states it: the reference the trie must equal.
func naiveWordPiece(_ word: [Unicode.Scalar], vocab: Set<String>, maxChars: Int = 100) -> [String] {
    if word.count > maxChars { return ["[UNK]"] }
    var out: [String] = []
    var start = 0
    while start < word.count {
        var end = word.count
        var found: String? = nil
        while start < end {
            var piece = String(String.UnicodeScalarView(word[start..<end]))
            if start > 0 { piece = "##" + piece }
            if vocab.contains(piece) { found = piece; break }
            end -= 1
        }
        guard let found else { return ["[UNK]"] }
        out.append(found)
        start = end
    }
    return out
}

struct SplitMix {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func below(_ n: Int) -> Int { Int(next() % UInt64(n)) }
}

@Suite struct WordPieceTests {
    /// The trie with failure links gives exactly greedy longest-match-first, on random
    /// vocabularies over a small alphabet (so that partial matches and dead ends are common).
    @Test(arguments: [1, 2, 3, 4, 5])
    func trieEqualsGreedyLongestMatch(seed: Int) throws {
        var rng = SplitMix(state: UInt64(seed))
        let alphabet: [Unicode.Scalar] = ["a", "b", "c", "d", "é", "ж"]
        var vocab: Set<String> = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
        for _ in 0..<120 {
            let n = 1 + rng.below(5)
            var s = String.UnicodeScalarView()
            for _ in 0..<n { s.append(alphabet[rng.below(alphabet.count - (seed == 5 ? 0 : 1))]) }
            vocab.insert((rng.below(2) == 0 ? "##" : "") + String(s))
        }
        let tokens = vocab.sorted()
        var tokenizer = try BertTokenizer(vocabulary: Vocabulary(tokens: tokens), normalizer: .cased)
        tokenizer.postProcessor = nil
        var checked = 0
        for _ in 0..<400 {
            let n = 1 + rng.below(12)
            var word = [Unicode.Scalar]()
            for _ in 0..<n { word.append(alphabet[rng.below(alphabet.count)]) }
            let text = String(String.UnicodeScalarView(word))
            let expected = naiveWordPiece(word, vocab: vocab)
            let got = tokenizer.tokens(try tokenizer.encode(text, addSpecialTokens: false).ids)
            #expect(got == expected, "word \(text)")
            checked += 1
        }
        #expect(checked == 400)
    }

    /// Tokens are compared byte for byte: "K" and KELVIN SIGN are canonically equivalent Strings
    /// in Swift but two tokens in a vocabulary, as in Hugging Face's.
    @Test func canonicallyEquivalentTokensStayApart() throws {
        let vocab = Vocabulary(tokens: ["[UNK]", "[CLS]", "[SEP]", "K", "\u{212A}", "é", "e\u{301}"])
        #expect(vocab.id(of: "K") == 3 && vocab.id(of: "\u{212A}") == 4)
        #expect(vocab.id(of: "é") == 5 && vocab.id(of: "e\u{301}") == 6)
        let t = try BertTokenizer(
            vocabulary: vocab, normalizer: NormalizerOptions(stripAccents: false, lowercase: false))
        #expect(try t.encode("K \u{212A} é", addSpecialTokens: false).ids == [3, 4, 5])
    }

    @Test func wordsLongerThanTheLimitAreUnknown() throws {
        let vocab = Vocabulary(tokens: ["[UNK]", "[CLS]", "[SEP]", "a", "##a"])
        let tokenizer = try BertTokenizer(vocabulary: vocab, maxInputCharsPerWord: 5)
        #expect(
            tokenizer.tokens(try tokenizer.encode("aaaaa").ids) == ["[CLS]", "a", "##a", "##a", "##a", "##a", "[SEP]"])
        let long = try tokenizer.encode("aaaaaa b")
        #expect(tokenizer.tokens(long.ids) == ["[CLS]", "[UNK]", "[UNK]", "[SEP]"])
        #expect(long.offsets[1] == Offset(0, 6))
    }
}

@Suite struct EncodingTests {
    static let tokens = [
        "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "the", "cafe", "caf", "##e", "!", "中", "##s", "dog", "run",
        "##ning", ",",
    ]

    func tokenizer() throws -> BertTokenizer { try BertTokenizer(vocabulary: Vocabulary(tokens: Self.tokens)) }

    @Test func uncasedPipelineAndOffsets() throws {
        let t = try tokenizer()
        let e = try t.encode("The CAFÉ\u{200B}s running, 中! [MASK]")
        #expect(t.tokens(e.ids) == ["[CLS]", "the", "cafe", "##s", "run", "##ning", ",", "中", "!", "[MASK]", "[SEP]"])
        #expect(
            e.offsets.map { [$0.start, $0.end] } == [
                [0, 0], [0, 3], [4, 8], [9, 10], [11, 14], [14, 18], [18, 19], [20, 21], [21, 22], [23, 29], [0, 0],
            ])
        #expect(e.wordIds == [-1, 0, 1, 1, 2, 2, 3, 4, 5, 6, -1])
        #expect(e.specialTokensMask == [1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1])
    }

    @Test func utf8OffsetsPointAtTheSameText() throws {
        var t = try tokenizer()
        let text = "Café 中 dog! ünknown"
        let scalars = try t.encode(text)
        t.offsetUnit = .utf8
        let bytes = try t.encode(text)
        #expect(scalars.ids == bytes.ids)
        let u = Array(text.unicodeScalars), b = Array(text.utf8)
        for (s, y) in zip(scalars.offsets, bytes.offsets) {
            let viaScalars = String(String.UnicodeScalarView(u[s.start..<s.end]))
            let viaBytes = String(decoding: b[y.start..<y.end], as: UTF8.self)
            #expect(viaScalars == viaBytes)
        }
        #expect(bytes.offsets[3] == Offset(10, 13))  // "dog" after the 2-byte é and the 3-byte 中
    }

    @Test func pairsTruncationAndPadding() throws {
        var t = try tokenizer()
        t.truncation = Truncation(maxLength: 8)
        t.padding = Padding(strategy: .fixed(10))
        let e = try t.encode("the dog the dog the dog", pair: "running dog")
        #expect(e.count == 10)
        // 5 tokens left for the two texts (6 and 3 tokens): longest_first keeps 3 + 2.
        #expect(t.tokens(Array(e.ids.prefix(8))) == ["[CLS]", "the", "dog", "the", "[SEP]", "run", "##ning", "[SEP]"])
        #expect(e.typeIds == [0, 0, 0, 0, 0, 1, 1, 1, 0, 0])
        #expect(e.attentionMask == [1, 1, 1, 1, 1, 1, 1, 1, 0, 0])
        #expect(!e.overflowing.isEmpty && e.overflowing.allSatisfy { $0.count == 10 })
    }

    @Test func impossibleTruncationIsAnError() throws {
        var t = try tokenizer()
        t.truncation = Truncation(maxLength: 5, strategy: .onlySecond)
        #expect(throws: TokenizerError.self) { try t.encode("the dog the dog the dog", pair: "dog") }
        t.truncation = Truncation(maxLength: 6, strategy: .longestFirst, stride: 4)
        #expect(throws: TokenizerError.self) { try t.encode("the dog the dog the dog the dog") }
    }

    @Test func batchesEqualSingleEncodesOnEveryThreadCount() throws {
        let t = try tokenizer()
        let texts = (0..<200).map { i in String(repeating: "the dog running, ", count: i % 7) + "中 \(i)" }
        let single = try texts.map { try t.encode($0) }
        #expect(texts.indices.allSatisfy { t.encodeIds(texts[$0]) == single[$0].ids })
        for threads in [1, 2, 3] {
            #expect(try t.encodeBatch(texts, threads: threads) == single)
            let ragged = t.encodeIdsBatch(texts, threads: threads)
            #expect((0..<texts.count).allSatisfy { Array(ragged[$0]) == single[$0].ids })
        }
    }

    @Test func decodeJoinsPiecesAndCleansUp() throws {
        let t = try tokenizer()
        let e = try t.encode("the cafes , running!")
        #expect(t.decode(e.ids) == "the cafes, running!")
        #expect(t.decode(e.ids, skipSpecialTokens: false) == "[CLS] the cafes, running! [SEP]")
    }
}

@Suite struct LoadingErrorTests {
    func temp(_ name: String, _ contents: String) throws -> URL {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bert-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let url = dir.appendingPathComponent(name)
        try contents.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func missingFilesAreNamed() {
        #expect(throws: TokenizerError.fileNotFound("/nonexistent/vocab.txt")) {
            try BertTokenizer(vocabFile: URL(fileURLWithPath: "/nonexistent/vocab.txt"))
        }
        #expect(throws: TokenizerError.fileNotFound("/nonexistent")) {
            try BertTokenizer(modelFolder: URL(fileURLWithPath: "/nonexistent"))
        }
    }

    @Test func malformedTokenizerJSON() throws {
        for (contents, fragment) in [
            ("{not json", "invalid JSON"),
            ("[1, 2]", "not a JSON object"),
            ("{}", "no \"model\""),
            (#"{"model": {"type": "BPE", "vocab": {}}}"#, "model type BPE"),
            (#"{"model": {"type": "WordPiece", "vocab": {"a": 0, "b": 0}}}"#, "given to two tokens"),
            (#"{"model": {"type": "WordPiece", "vocab": {"a": 5}}}"#, "outside"),
            (
                #"{"model": {"type": "WordPiece", "vocab": {"[UNK]": 0}}, "normalizer": {"type": "NFKC"}}"#,
                "normalizer NFKC"
            ),
        ] {
            let url = try temp("tokenizer.json", contents)
            do {
                _ = try BertTokenizer(tokenizerJSON: url)
                Issue.record("accepted \(contents)")
            } catch let e as TokenizerError {
                #expect(e.description.contains(url.path), "\(e)")
                #expect(e.description.contains(fragment), "\(e) should say \(fragment)")
            }
        }
    }

    /// tokenizer.json vocabulary keys are read byte-exact: canonically equivalent tokens keep
    /// their own ids, and escapes (\\u, surrogate pairs) decode.
    @Test func tokenizerJSONKeepsEquivalentTokensApart() throws {
        let json =
            #"{"model": {"type": "WordPiece", "unk_token": "[UNK]", "vocab": {"[UNK]": 0, "[CLS]": 1, "[SEP]": 2, "#
            + #""K": 3, "\u212a": 4, "\ud83d\ude00": 5, "a\"b": 6}}, "normalizer": {"type": "BertNormalizer", "#
            + #""lowercase": false, "strip_accents": false}, "pre_tokenizer": {"type": "BertPreTokenizer"}}"#
        let t = try BertTokenizer(tokenizerJSON: try temp("tokenizer.json", json))
        #expect(t.vocabulary.count == 7)
        #expect(t.vocabulary.id(of: "K") == 3 && t.vocabulary.id(of: "\u{212A}") == 4)
        #expect(t.vocabulary.id(of: "😀") == 5 && t.vocabulary.id(of: "a\"b") == 6)
        #expect(try t.encode("K \u{212A}", addSpecialTokens: false).ids == [3, 4])
    }

    @Test func vocabularyWithoutUnknownToken() throws {
        let url = try temp("vocab.txt", "[CLS]\n[SEP]\nhello\n")
        #expect(throws: TokenizerError.self) { try BertTokenizer(vocabFile: url) }
    }

    @Test func emptyVocabulary() throws {
        let url = try temp("vocab.txt", "")
        #expect(throws: TokenizerError.malformed(url.path, "the vocabulary is empty")) {
            try BertTokenizer(vocabFile: url)
        }
    }
}

@Suite(.enabled(if: Fixtures.haveModel || Fixtures.required))
struct RealTokenizerTests {
    /// vocab.txt alone with BERT's defaults tokenizes as tokenizer.json does.
    @Test func vocabTxtEqualsTokenizerJSON() throws {
        var fromJSON = try Fixtures.miniLM()
        fromJSON.truncation = nil
        fromJSON.padding = nil
        let fromVocab = try BertTokenizer(vocabFile: Fixtures.model.appendingPathComponent("vocab.txt"))
        let text = try String(contentsOf: Fixtures.corpus.appendingPathComponent("en.txt"), encoding: .utf8)
        let lines =
            text.split(separator: "\n").prefix(3000).map(String.init) + ["Hello [MASK] world", "中文 Ünïcödé"]
        #expect(try fromJSON.encodeBatch(lines) == fromVocab.encodeBatch(lines))
    }

    @Test func fileSettingsAreApplied() throws {
        let t = try Fixtures.miniLM()
        #expect(t.truncation == Truncation(maxLength: 128))
        #expect(t.padding?.strategy == .fixed(128))
        #expect(try t.encode("hello").count == 128)
    }
}

@Suite struct TokenizerWriterTests {
    @Test func writtenTokenizerJSONLoadsBackWithTheSameEncodings() throws {
        let vocab = [
            "[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "world", "##s", "\"quoted\"", "back\\slash", "café",
            "cafe\u{301}", ",", "!",
        ]
        var tokenizer = try BertTokenizer(vocabulary: Vocabulary(tokens: vocab), normalizer: .cased)
        tokenizer.normalizer = NormalizerOptions(
            cleanText: true, handleChineseChars: true, stripAccents: false, lowercase: false)
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tokwrite-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try tokenizer.write(to: folder)
        let loaded = try BertTokenizer(modelFolder: folder)
        #expect(loaded.vocabulary.tokens == vocab, "byte-exact tokens, canonically equivalent ones kept apart")
        #expect(loaded.normalizer == tokenizer.normalizer)
        for text in ["hello worlds!", "café cafe\u{301} [MASK] hello", "\"quoted\" back\\slash ,"] {
            #expect(try loaded.encode(text) == tokenizer.encode(text), "\(text)")
            #expect(try loaded.encode(text, pair: "world") == tokenizer.encode(text, pair: "world"))
        }
    }
}

/// vocab.txt and tokenizer_config.json as users have them: Windows line ends, a byte-order mark,
/// settings beside the vocabulary, a line of megabytes.
@Suite(.enabled(if: Fixtures.haveModel || Fixtures.required, "needs the model folder"))
struct TokenizerFileHardeningTests {
    func folder(_ files: [String: Data]) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tok-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        for (name, data) in files { try data.write(to: url.appendingPathComponent(name)) }
        return url
    }

    @Test func crlfAndByteOrderMarkVocabulariesReadAsLF() throws {
        let lf = try Data(contentsOf: Fixtures.model.appendingPathComponent("vocab.txt"))
        let text = String(decoding: lf, as: UTF8.self)
        let crlf = Data(text.replacingOccurrences(of: "\n", with: "\r\n").utf8)
        let bom = Data([0xEF, 0xBB, 0xBF]) + lf
        let dir = try folder(["lf.txt": lf, "crlf.txt": crlf, "bom.txt": bom])
        defer { try? FileManager.default.removeItem(at: dir) }
        let sample = "Héllo, wörld! The tokenizer's [MASK] unaffable 東京 run."
        let reference = try BertTokenizer(vocabFile: dir.appendingPathComponent("lf.txt"))
        for name in ["crlf.txt", "bom.txt"] {
            let t = try BertTokenizer(vocabFile: dir.appendingPathComponent(name))
            #expect(t.vocabulary.tokens == reference.vocabulary.tokens, "\(name)")
            #expect(try t.encode(sample).ids == reference.encode(sample).ids, "\(name)")
        }
        #expect(reference.vocabulary.count == 30522 && reference.vocabulary.tokens[0] == "[PAD]")
    }

    @Test func tokenizerConfigSettingsApplyToAVocabFolderAndATokenizerJSON() throws {
        let vocab = try Data(contentsOf: Fixtures.model.appendingPathComponent("vocab.txt"))
        let json = try Data(contentsOf: Fixtures.model.appendingPathComponent("tokenizer.json"))
        let keepCase = Data(#"{"do_lower_case": false}"#.utf8)
        let sample = "Hello World, HELLO"
        let cased = try BertTokenizer(
            vocabFile: Fixtures.model.appendingPathComponent("vocab.txt"), normalizer: .cased)
        let uncased = try BertTokenizer(vocabFile: Fixtures.model.appendingPathComponent("vocab.txt"))
        #expect(try cased.encode(sample).ids != uncased.encode(sample).ids)
        for files in [
            ["vocab.txt": vocab, "tokenizer_config.json": keepCase],
            ["vocab.txt": vocab, "tokenizer.json": json, "tokenizer_config.json": keepCase],
        ] {
            let dir = try folder(files)
            defer { try? FileManager.default.removeItem(at: dir) }
            var t = try BertTokenizer(modelFolder: dir)
            t.padding = nil  // tokenizer.json pads to 128
            #expect(t.normalizer.lowercase == false)
            // Kept case: the uncased vocabulary has no "Hello", so these are [UNK] (as transformers gives).
            #expect(
                try t.tokens(t.encode(sample).ids) == cased.tokens(cased.encode(sample).ids), "\(files.keys.sorted())")
            #expect(try t.tokens(t.encode(sample).ids).contains("[UNK]"))
        }
    }

    @Test func aVocabularyLineOfMegabytesIsReadInBoundedMemory() throws {
        var vocab = try Data(contentsOf: Fixtures.model.appendingPathComponent("vocab.txt"))
        vocab += Data(repeating: UInt8(ascii: "x"), count: 10_000_000) + Data("\n".utf8)
        let dir = try folder(["vocab.txt": vocab])
        defer { try? FileManager.default.removeItem(at: dir) }
        // Before, the 10 MB token went into the trie as ten million nodes (1.6 GB).
        let t = try BertTokenizer(vocabFile: dir.appendingPathComponent("vocab.txt"))
        #expect(t.vocabulary.count == 30523)
        #expect(try t.tokens(t.encode("hello world").ids) == ["[CLS]", "hello", "world", "[SEP]"])
        // The long token keeps its id, and a word of more than 100 characters is [UNK] as before.
        #expect(t.vocabulary.id(of: String(repeating: "x", count: 10_000_000)) == 30522)
        #expect(try t.tokens(t.encode(String(repeating: "x", count: 150)).ids) == ["[CLS]", "[UNK]", "[SEP]"])
    }
}

/// A vocabulary that lists a token twice: lookups give the later id, as Hugging Face's loaders
/// do, for whole words and for pieces alike.
@Test func duplicateTokensTakeTheLaterId() throws {
    let tokens = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "##lo", "hel", "hello", "##lo", "x"]
    let t = try BertTokenizer(vocabulary: Vocabulary(tokens: tokens))
    #expect(t.vocabulary.id(of: "hello") == 8 && t.vocabulary.id(of: "##lo") == 9)
    #expect(try t.encode("hello hellolo hello").ids == [2, 8, 8, 9, 8, 3])
    #expect(Array(t.encodeIdsBatch(["hello hellolo x"])[0]) == [2, 8, 8, 9, 10, 3])
}
