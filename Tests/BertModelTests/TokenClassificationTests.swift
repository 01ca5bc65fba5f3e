import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// BertForTokenClassification against transformers (Fixtures/tiny-tokcls), finite differences
/// under dropout, seqeval's entity rules, CoNLL reading and first-piece label alignment.
@Suite struct TokenClassificationTests {
    let reference: SafeTensorsFile
    let batch: EncoderBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_seqcls_reference.safetensors")
        let inputs = try ModelFixtures.reference("tiny_reference.safetensors")
        batch = EncoderBatch(
            batchSize: 3, sequenceLength: 11, inputIds: try inputs.int32s("input_ids"),
            tokenTypeIds: try inputs.int32s("token_type_ids"), attentionMask: try inputs.int32s("attention_mask"))
    }

    @Test func logitsLossAndEveryGradientMatchTransformers() throws {
        let model = try BertForTokenClassification(folder: ModelFixtures.url("tiny-tokcls"))
        #expect(model.labels == ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"])
        let grads = try ParameterStore(layout: model.parameters.layout)
        let loss = try model.lossAndGradients(batch, labels: try reference.int32s("tag.labels"), into: grads)
        #expect(abs(loss - Double(try reference.floats("tag.loss")[0])) <= 1e-5)
        // Logits at real positions (transformers computes padding too; we leave it zero).
        let ours = try model.logits(batch), theirs = try reference.floats("tag.logits")
        let mask = batch.attentionMask!
        var worst: Float = 0
        for i in 0..<mask.count where mask[i] == 1 {
            for j in 0..<5 { worst = max(worst, abs(ours[i * 5 + j] - theirs[i * 5 + j])) }
        }
        #expect(worst <= 1e-5)
        #expect(!model.parameters.layout.tensors.contains { $0.name.contains("pooler") })
        try expectGradientsMatch(grads, reference: reference, prefix: "tag.")
    }

    @Test func finiteDifferencesAgreeWithTheBackwardPassUnderDropout() throws {
        let model = try BertForTokenClassification(folder: ModelFixtures.url("tiny-tokcls"))
        let labels = try reference.int32s("tag.labels")
        let dropout = Dropout(hiddenProbability: 0.3, attentionProbability: 0.2, seed: 5)
        let grads = try ParameterStore(layout: model.parameters.layout)
        _ = try model.lossAndGradients(batch, labels: labels, into: grads, dropout: dropout)
        let scratch = try ParameterStore(layout: model.parameters.layout)
        let checked = try expectFiniteDifferencesMatch(
            model.parameters, gradients: grads,
            tensors: [
                "classifier.weight", "classifier.bias", "bert.encoder.layer.1.output.dense.weight",
                "bert.embeddings.word_embeddings.weight",
            ], perTensor: 6
        ) {
            try model.lossAndGradients(batch, labels: labels, into: scratch, dropout: dropout)
        }
        #expect(checked >= 20)
    }

    @Test func entitiesAndScoresFollowSeqeval() throws {
        let r = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("metrics_reference.json")))
                as? [String: Any])
        let gold = try #require(r["gold_tags"] as? [[String]]), predicted = try #require(r["pred_tags"] as? [[String]])
        let expected = try #require(r["entities"] as? [[[Any]]])
        for (tags, want) in zip(gold, expected) {
            let ours = entities(tags).map { "\($0.type) \($0.start) \($0.end - 1)" }
            let theirs = want.map { "\($0[0]) \($0[1]) \($0[2])" }
            #expect(ours == theirs, "\(tags)")
        }
        let s = Metrics.entityScores(predicted: predicted, gold: gold)
        #expect(abs(s.precision - (r["seqeval_precision"] as! NSNumber).doubleValue) < 1e-12)
        #expect(abs(s.recall - (r["seqeval_recall"] as! NSNumber).doubleValue) < 1e-12)
        #expect(abs(s.f1 - (r["seqeval_f1"] as! NSNumber).doubleValue) < 1e-12)
    }

    @Test func conllFilesAreReadWithLineNumbersInErrors() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("tags-\(UUID().uuidString).txt")
        defer { try? FileManager.default.removeItem(at: url) }
        try "-DOCSTART- O\n\nJohn\tB-PER\nlives in\tO\nParis\tB-LOC\n\n\nok O\n".write(
            to: url, atomically: true, encoding: .utf8)
        let s = try readTaggedSentences(url)
        #expect(s.count == 2)
        #expect(s[0].words == ["John", "lives", "Paris"] && s[0].tags == ["B-PER", "O", "B-LOC"])
        #expect(s[1].source.hasSuffix(":8"))
        try "John B-PER\nbroken\n".write(to: url, atomically: true, encoding: .utf8)
        do {
            _ = try readTaggedSentences(url)
            Issue.record("a line without a tag must be an error")
        } catch let e as BertError {
            #expect(e.message.contains(url.path + ":2"), "\(e.message)")
        }
        #expect(tagNames(of: s) == ["O", "B-LOC", "B-PER"])
    }

    /// Labels sit on each word's first WordPiece; predictions map back to words and to character
    /// spans of the original text.
    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the MiniLM tokenizer"))
    func labelsGoOnFirstPiecesAndPredictionsMapBackToWords() throws {
        let tokenizer = try BertTokenizer(modelFolder: ModelFixtures.miniLMFolder)
        let hf = try BertForTokenClassification(folder: ModelFixtures.url("tiny-tokcls"))
        var config = hf.config
        config.vocabSize = tokenizer.vocabulary.count
        config.maxPositionEmbeddings = 64
        let model = try BertForTokenClassification(config: config, labels: hf.labels)
        var rng = SeededRandom(seed: 2)
        initializeBertParameters(model.parameters, config: config, rng: &rng)
        var options = FineTuneOptions()
        options.maxLength = 16
        let tagger = TokenTagger(
            model: model, tokenizer: tokenizer, options: options)
        let words = ["Unbelievably", ",", "Zxqvwy", "visited", "Reykjavík"]
        let tags = ["O", "O", "B-PER", "O", "B-LOC"]
        let (batch, positions, labels) = try tagger.encode([words], tags: [tags])
        let pieces = words.map { tokenizer.encodeIds($0, addSpecialTokens: false).count }
        #expect(pieces[0] > 1 && pieces[2] > 1)
        var expected: [Int?] = []
        var at = 1
        for p in pieces { expected.append(at); at += p }
        #expect(positions[0] == expected)
        let labelled = labels.indices.filter { labels[$0] != -100 }
        #expect(labelled == expected.compactMap { $0 })
        #expect(labelled.map { labels[$0] } == [0, 0, 1, 0, 3])
        #expect(batch.sequenceLength == at + 1)
        // A sentence longer than max length: the words past it are predicted "O" and not labelled.
        let long = Array(repeating: "word", count: 40)
        let (_, cut, _) = try tagger.encode([long], tags: nil)
        #expect(cut[0].compactMap { $0 }.count == 14 && cut[0].last! == nil)
        #expect(try tagger.predict([long])[0].count == 40)
        // Raw text: words and spans in Unicode scalars of the original string.
        let text = "Olá, Zoë visited Reykjavík!"
        let tagged = try tagger.tag(text).words
        let scalars = Array(text.unicodeScalars)
        #expect(tagged.map(\.word) == ["Olá", ",", "Zoë", "visited", "Reykjavík", "!"])
        for w in tagged { #expect(String(String.UnicodeScalarView(scalars[w.start..<w.end])) == w.word) }
    }
}
