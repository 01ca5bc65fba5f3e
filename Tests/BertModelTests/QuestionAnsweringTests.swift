import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// BertForQuestionAnswering against transformers (Fixtures/tiny-qa), finite differences, SQuAD
/// reading and scoring, windows over long contexts and span selection.
@Suite struct QuestionAnsweringTests {
    let reference: SafeTensorsFile
    let batch: EncoderBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_seqcls_reference.safetensors")
        batch = EncoderBatch(
            batchSize: 2, sequenceLength: 12, inputIds: try reference.int32s("qa.input_ids"),
            tokenTypeIds: try reference.int32s("qa.token_type_ids"))
    }

    @Test func logitsLossAndEveryGradientMatchTransformers() throws {
        let model = try BertForQuestionAnswering(folder: ModelFixtures.url("tiny-qa"))
        let grads = try ParameterStore(layout: model.parameters.layout)
        let starts = try reference.int32s("qa.starts").map(Int.init),
            ends = try reference.int32s("qa.ends").map(Int.init)
        let loss = try model.lossAndGradients(batch, starts: starts, ends: ends, into: grads)
        #expect(abs(loss - Double(try reference.floats("qa.loss")[0])) <= 1e-5)
        let (st, en) = try model.logits(batch)
        #expect(maxAbsDiff(st, try reference.floats("qa.start_logits")) <= 1e-5)
        #expect(maxAbsDiff(en, try reference.floats("qa.end_logits")) <= 1e-5)
        try expectGradientsMatch(grads, reference: reference, prefix: "qa.")
    }

    @Test func finiteDifferencesAgreeWithTheBackwardPassOnPaddedRows() throws {
        let model = try BertForQuestionAnswering(folder: ModelFixtures.url("tiny-qa"))
        var mask = [Int32](repeating: 1, count: 24)
        for j in 9..<12 { mask[12 + j] = 0 }
        let padded = EncoderBatch(
            batchSize: 2, sequenceLength: 12, inputIds: batch.inputIds, tokenTypeIds: batch.tokenTypeIds,
            attentionMask: mask)
        let dropout = Dropout(hiddenProbability: 0.2, attentionProbability: 0.1, seed: 9)
        let grads = try ParameterStore(layout: model.parameters.layout),
            scratch = try ParameterStore(layout: model.parameters.layout)
        _ = try model.lossAndGradients(padded, starts: [6, 2], ends: [8, 7], into: grads, dropout: dropout)
        #expect(throws: BertError.self) {
            try model.lossAndGradients(padded, starts: [6, 10], ends: [8, 10], into: scratch)
        }
        let checked = try expectFiniteDifferencesMatch(
            model.parameters, gradients: grads,
            tensors: ["qa_outputs.weight", "qa_outputs.bias", "bert.encoder.layer.0.attention.self.query.weight"],
            perTensor: 8
        ) {
            try model.lossAndGradients(padded, starts: [6, 2], ends: [8, 7], into: scratch, dropout: dropout)
        }
        #expect(checked >= 18)
    }

    @Test func squadScoringMatchesTheOfficialScript() throws {
        let r = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("metrics_reference.json")))
                as? [String: Any])
        let cases = try #require(r["squad"] as? [[Any]])
        #expect(cases.count == 8)
        for c in cases {
            let gold = c[0] as! String, predicted = c[1] as! String
            #expect(
                SquadMetrics.exactMatch(predicted, [gold]) == (c[2] as! NSNumber).doubleValue, "\(gold) / \(predicted)")
            #expect(
                abs(SquadMetrics.f1(predicted, [gold]) - (c[3] as! NSNumber).doubleValue) < 1e-12,
                "\(gold) / \(predicted)")
        }
        #expect(SquadMetrics.exactMatch("", []) == 1 && SquadMetrics.f1("x", []) == 0)
    }

    func squadFile(_ object: Any) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("squad-\(UUID().uuidString).json")
        try JSONSerialization.data(withJSONObject: object).write(to: url)
        return url
    }

    @Test func squadFilesAreReadAndCheckedAgainstTheirContexts() throws {
        let context = "Zoë's café opened in 1889 in Paris."
        let good = try squadFile([
            "data": [
                [
                    "paragraphs": [
                        [
                            "context": context,
                            "qas": [
                                ["id": "q1", "question": "When?", "answers": [["text": "1889", "answer_start": 21]]],
                                ["id": "q2", "question": "Who owns the moon?", "answers": [], "is_impossible": true],
                            ],
                        ]
                    ]
                ]
            ]
        ])
        let examples = try readSquad(good)
        #expect(examples.count == 2 && examples[0].answers[0].start == 21 && examples[1].isImpossible)
        let bad = try squadFile([
            "data": [
                [
                    "paragraphs": [
                        [
                            "context": context,
                            "qas": [
                                ["id": "q9", "question": "When?", "answers": [["text": "1889", "answer_start": 20]]]
                            ],
                        ]
                    ]
                ]
            ]
        ])
        do {
            _ = try readSquad(bad)
            Issue.record("a misplaced answer must be an error")
        } catch let e as BertError {
            #expect(e.message.contains("q9") && e.message.contains("1889"), "\(e.message)")
        }
        #expect(throws: BertError.self) { _ = try readSquad(try squadFile(["version": "1.1"])) }
    }

    /// Windows cover the context with the stride's overlap, the answer's tokens are located in
    /// each window that holds it, and predicted spans are pieces of the context.
    @Test(.enabled(if: ModelFixtures.haveMiniLM || ModelFixtures.required, "needs the MiniLM tokenizer"))
    func windowsAnswerPositionsAndSpans() throws {
        let tokenizer = try BertTokenizer(modelFolder: ModelFixtures.miniLMFolder)
        var config = try BertConfig.preset("tiny")
        config.vocabSize = tokenizer.vocabulary.count
        config.maxPositionEmbeddings = 64
        let model = try BertForQuestionAnswering(config: config)
        var rng = SeededRandom(seed: 3)
        initializeBertParameters(model.parameters, config: config, rng: &rng)
        var qa = QAOptions()
        qa.maxLength = 48
        qa.docStride = 16
        qa.maxQueryLength = 8
        qa.maxAnswerLength = 5
        let answerer = QuestionAnswerer(
            model: model, tokenizer: tokenizer, options: FineTuneOptions(), qa: qa)
        var sentences: [String] = []
        for i in 0..<30 { sentences.append("Sentence number \(i) talks about café number \(i * 7).") }
        let context = sentences.joined(separator: " ")
        let answer = "café number 147"
        let start = Array(context.unicodeScalars).indices.first {
            String(String.UnicodeScalarView(Array(context.unicodeScalars)[$0...].prefix(answer.unicodeScalars.count)))
                == answer
        }!
        let example = SquadExample(
            id: "x", question: "Which café is talked about in sentence twenty one, the one after twenty?",
            context: context, answers: [(answer, start)], isImpossible: false)
        let features = try answerer.features([example])
        #expect(features.count > 3)
        var holders = 0
        for f in features {
            #expect(f.ids.count <= 48)
            let questionTokens = f.typeIds.filter { $0 == 0 }.count - 2
            #expect(questionTokens == 8)
            if f.startPosition > 0 {
                holders += 1
                let a = f.contextOffsets[f.startPosition]!.start, z = f.contextOffsets[f.endPosition]!.end
                #expect(String(String.UnicodeScalarView(Array(context.unicodeScalars)[a..<z])) == answer)
            }
        }
        #expect(holders >= 1)
        // Consecutive windows overlap by the stride: the last 16 context tokens of one begin the next.
        let ctx0 = features[0].contextOffsets.compactMap { $0 }, ctx1 = features[1].contextOffsets.compactMap { $0 }
        #expect(ctx0.suffix(16).map { $0.start } == ctx1.prefix(16).map { $0.start })
        let p = try answerer.predict([example])[0]
        #expect(
            String(String.UnicodeScalarView(Array(context.unicodeScalars)[p.start..<p.end])) == p.text
                && !p.text.isEmpty)
        #expect(tokenizer.encodeIds(p.text, addSpecialTokens: false).count <= 5)
        var always = qa, never = qa
        always.allowNull = true; always.nullThreshold = -1e9
        never.allowNull = true; never.nullThreshold = 1e9
        #expect(
            try QuestionAnswerer(
                model: model, tokenizer: tokenizer, options: FineTuneOptions(), qa: always
            ).predict([example])[0].text == "")
        #expect(
            try QuestionAnswerer(model: model, tokenizer: tokenizer, options: FineTuneOptions(), qa: never)
                .predict([example])[0].text == p.text)
    }
}

/// BertForMultipleChoice against transformers (Fixtures/tiny-choice), finite differences under
/// dropout, and the JSON Lines reader.
@Suite struct MultipleChoiceTests {
    let reference: SafeTensorsFile
    let batch: EncoderBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_seqcls_reference.safetensors")
        batch = EncoderBatch(
            batchSize: 6, sequenceLength: 9, inputIds: try reference.int32s("mc.input_ids"),
            tokenTypeIds: try reference.int32s("mc.token_type_ids"),
            attentionMask: try reference.int32s("mc.attention_mask"))
    }

    @Test func scoresLossAndEveryGradientMatchTransformers() throws {
        let model = try BertForMultipleChoice(folder: ModelFixtures.url("tiny-choice"))
        let grads = try ParameterStore(layout: model.parameters.layout)
        let (loss, logits) = try model.lossAndGradients(
            batch, choices: 3, labels: try reference.int32s("mc.labels"), into: grads)
        #expect(abs(loss - Double(try reference.floats("mc.loss")[0])) <= 1e-5)
        #expect(maxAbsDiff(logits, try reference.floats("mc.logits")) <= 1e-5)
        #expect(maxAbsDiff(try model.scores(batch), try reference.floats("mc.logits")) <= 1e-5)
        try expectGradientsMatch(grads, reference: reference, prefix: "mc.")
        #expect(throws: BertError.self) {
            _ = try model.lossAndGradients(batch, choices: 4, labels: [0, 1], into: grads)
        }
        #expect(throws: BertError.self) {
            _ = try model.lossAndGradients(batch, choices: 3, labels: [0, 3], into: grads)
        }
    }

    @Test func finiteDifferencesAgreeWithTheBackwardPassUnderDropout() throws {
        let model = try BertForMultipleChoice(folder: ModelFixtures.url("tiny-choice"))
        let labels: [Int32] = [1, 2]
        let dropout = Dropout(hiddenProbability: 0.3, attentionProbability: 0.1, seed: 21)
        let grads = try ParameterStore(layout: model.parameters.layout),
            scratch = try ParameterStore(layout: model.parameters.layout)
        _ = try model.lossAndGradients(batch, choices: 3, labels: labels, into: grads, dropout: dropout)
        let checked = try expectFiniteDifferencesMatch(
            model.parameters, gradients: grads,
            tensors: [
                "classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                "bert.encoder.layer.1.intermediate.dense.weight",
            ], perTensor: 6
        ) {
            try model.lossAndGradients(batch, choices: 3, labels: labels, into: scratch, dropout: dropout).loss
        }
        #expect(checked >= 18)
    }

    @Test func choiceFilesAreReadWithLineNumbersInErrors() throws {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("choice-\(UUID().uuidString).jsonl")
        defer { try? FileManager.default.removeItem(at: url) }
        let text =
            "{\"context\": \"c\", \"endings\": [\"a\", \"b\", \"c\"], \"label\": 2}\n\n{\"context\": \"d\", "
            + "\"endings\": [\"x\", \"y\"], \"label\": 0}\n"
        try text.write(to: url, atomically: true, encoding: .utf8)
        let e = try readChoiceExamples(url)
        #expect(e.count == 2 && e[0].label == 2 && e[1].endings == ["x", "y"])
        for (bad, line) in [
            ("{\"context\": \"c\", \"endings\": [\"a\", \"b\"], \"label\": 2}\n", ":1"),
            (
                "{\"context\": \"c\", \"endings\": [\"a\", \"b\"], \"label\": 0}\n{\"context\": \"c\", \"endings\": "
                    + "[\"a\"], \"label\": 0}\n",
                ":2"
            ),
        ] {
            try bad.write(to: url, atomically: true, encoding: .utf8)
            do {
                _ = try readChoiceExamples(url)
                Issue.record("no error for \(bad)")
            } catch let err as BertError {
                #expect(err.message.contains(url.path + line), "\(err.message)")
            }
        }
    }
}
