import Bert
import BertCompute
import BertTokenizer
import Foundation
import Testing

/// BertForSequenceClassification against transformers (Fixtures/tiny-seqcls-*, made by
/// scripts/make_finetune_reference.py): logits, loss and every gradient; finite differences for the
/// head with its dropout; loading, saving and starting from a pretrained encoder.
@Suite struct SequenceClassificationTests {
    let reference: SafeTensorsFile
    let batch: EncoderBatch

    init() throws {
        reference = try ModelFixtures.reference("tiny_seqcls_reference.safetensors")
        let inputs = try ModelFixtures.reference("tiny_reference.safetensors")
        batch = EncoderBatch(
            batchSize: 3, sequenceLength: 11, inputIds: try inputs.int32s("input_ids"),
            tokenTypeIds: try inputs.int32s("token_type_ids"), attentionMask: try inputs.int32s("attention_mask"))
    }

    func targets(_ name: String, _ model: BertForSequenceClassification) throws -> ([Int32]?, [Float]?) {
        model.task == .classification
            ? (try reference.int32s(name + ".labels"), nil) : (nil, try reference.floats(name + ".labels"))
    }

    @Test(arguments: ["classify", "regress"])
    func logitsLossAndEveryGradientMatchTransformers(_ name: String) throws {
        let model = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-\(name)"))
        #expect(model.task == (name == "classify" ? .classification : .regression))
        if name == "classify" { #expect(model.labels == ["neg", "neu", "pos"]) }
        let grads = try ParameterStore(layout: model.parameters.layout)
        let (labels, values) = try targets(name, model)
        let (loss, logits) = try model.lossAndGradients(batch, classLabels: labels, targets: values, into: grads)
        #expect(maxAbsDiff(logits, try reference.floats(name + ".logits")) <= 1e-5)
        #expect(maxAbsDiff(try model.logits(batch), try reference.floats(name + ".logits")) <= 1e-5)
        #expect(abs(loss - Double(try reference.floats(name + ".loss")[0])) <= 1e-5)
        try expectGradientsMatch(grads, reference: reference, prefix: name + ".")
    }

    /// Central differences of the loss against the backward pass, with dropout on (the same masks
    /// replayed at every evaluation), for the classifier, the pooler and an encoder weight.
    @Test(arguments: ["classify", "regress"])
    func finiteDifferencesAgreeWithTheBackwardPassUnderDropout(_ name: String) throws {
        let model = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-\(name)"))
        let dropout = Dropout(hiddenProbability: 0.3, attentionProbability: 0.2, seed: 11)
        let (labels, values) = try targets(name, model)
        let grads = try ParameterStore(layout: model.parameters.layout)
        _ = try model.lossAndGradients(batch, classLabels: labels, targets: values, into: grads, dropout: dropout)
        let scratch = try ParameterStore(layout: model.parameters.layout)
        func loss() throws -> Double {
            try model.lossAndGradients(batch, classLabels: labels, targets: values, into: scratch, dropout: dropout)
                .loss
        }
        let checked = try expectFiniteDifferencesMatch(
            model.parameters, gradients: grads,
            tensors: [
                "classifier.weight", "classifier.bias", "bert.pooler.dense.weight",
                "bert.encoder.layer.1.output.dense.weight",
            ], loss: loss)
        #expect(checked >= 20)
    }

    @Test func savingWritesTransformersNamesAndLoadsBack() throws {
        let model = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-classify"))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("seqcls-\(UUID().uuidString)")
        defer { try? FileManager.default.removeItem(at: folder) }
        try model.save(to: folder)
        let ours = try SafeTensorsFile(contentsOf: folder.appendingPathComponent("model.safetensors"))
        let theirs = try SafeTensorsFile(
            contentsOf: ModelFixtures.url("tiny-seqcls-classify").appendingPathComponent("model.safetensors"))
        #expect(
            Set(ours.tensors.map { "\($0.name) \($0.shape)" }) == Set(theirs.tensors.map { "\($0.name) \($0.shape)" }))
        let config =
            try JSONSerialization.jsonObject(with: Data(contentsOf: folder.appendingPathComponent("config.json")))
            as? [String: Any]
        #expect(config?["architectures"] as? [String] == ["BertForSequenceClassification"])
        #expect(config?["problem_type"] as? String == "single_label_classification")
        #expect((config?["id2label"] as? [String: String]) == ["0": "neg", "1": "neu", "2": "pos"])
        let back = try BertForSequenceClassification(folder: folder)
        #expect(back.labels == model.labels)
        #expect(back.parameters.data.toArray() == model.parameters.data.toArray())
    }

    @Test func aNewHeadOnAPretrainedEncoderTakesTheEncoderAsIs() throws {
        // tiny-pretraining is a BertForPreTraining ("bert." names, cls.* heads that are ignored).
        let (model, initialised) = try BertForSequenceClassification.fromPretrained(
            folder: ModelFixtures.url("tiny-pretraining"), task: .classification, labels: ["a", "b"], seed: 1)
        #expect(initialised == ["classifier.weight", "classifier.bias"])
        let hf = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-classify"))
        for t in model.parameters.layout.tensors where t.name.hasPrefix("bert.") {
            #expect(
                model.parameters.values(t)
                    == hf.parameters.values(try #require(hf.parameters.layout.tensor(named: t.name))), "\(t.name)")
        }
        let w = model.parameters.values(try #require(model.parameters.layout.tensor(named: "classifier.weight")))
        let std = (w.map { Double($0 * $0) }.reduce(0, +) / Double(w.count)).squareRoot()
        #expect(
            abs(std - model.config.initializerRange) < 0.5 * model.config.initializerRange, "classifier init std \(std)"
        )
        #expect(throws: BertError.self) {
            _ = try BertForSequenceClassification.fromPretrained(
                folder: ModelFixtures.url("tiny-pretraining"), task: .classification, labels: ["only"], seed: 1)
        }
        #expect(throws: BertError.self) {
            _ = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-pretraining"))
        }
    }

    @Test func badLabelsAreErrors() throws {
        let model = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-classify"))
        let grads = try ParameterStore(layout: model.parameters.layout)
        #expect(throws: BertError.self) { _ = try model.lossAndGradients(batch, classLabels: [0, 3, 1], into: grads) }
        #expect(throws: BertError.self) { _ = try model.lossAndGradients(batch, classLabels: [0, 1], into: grads) }
        let regress = try BertForSequenceClassification(folder: ModelFixtures.url("tiny-seqcls-regress"))
        #expect(throws: BertError.self) { _ = try regress.lossAndGradients(batch, targets: [1, .nan, 2], into: grads) }
    }
}

/// Metrics against scikit-learn and scipy (Fixtures/metrics_reference.json).
@Suite struct MetricsTests {
    @Test func metricsMatchScikitLearnAndScipy() throws {
        let r = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: ModelFixtures.url("metrics_reference.json")))
                as? [String: Any])
        func ints(_ k: String) -> [Int] { (r[k] as! [NSNumber]).map(\.intValue) }
        func doubles(_ k: String) -> [Double] { (r[k] as! [NSNumber]).map(\.doubleValue) }
        func value(_ k: String) -> Double { (r[k] as! NSNumber).doubleValue }
        let g3 = ints("gold3"), p3 = ints("pred3"), g2 = ints("gold2"), p2 = ints("pred2")
        #expect(abs(Metrics.accuracy(p3, g3) - value("accuracy3")) < 1e-12)
        #expect(abs(Metrics.macroF1(p3, g3, classes: 3) - value("macro_f1_3")) < 1e-12)
        #expect(abs(Metrics.matthews(p3, g3, classes: 3) - value("mcc3")) < 1e-12)
        #expect(abs(Metrics.f1(p2, g2, positive: 1) - value("f1_2")) < 1e-12)
        #expect(abs(Metrics.matthews(p2, g2, classes: 2) - value("mcc2")) < 1e-12)
        #expect(abs(Metrics.pearson(doubles("x"), doubles("y")) - value("pearson")) < 1e-12)
        #expect(abs(Metrics.spearman(doubles("x"), doubles("y")) - value("spearman")) < 1e-12)
    }
}

/// Reading labeled data: CSV quoting, TSV, JSON Lines, and errors that name the file and line.
@Suite struct LabeledDataTests {
    func write(_ text: String, _ ext: String) throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("data-\(UUID().uuidString).\(ext)")
        try text.write(to: url, atomically: true, encoding: .utf8)
        return url
    }

    @Test func csvWithQuotesAndNewlinesTsvAndJsonLines() throws {
        let csv = try write(
            "text,text_pair,label\r\n\"Hello, \"\"world\"\"\",second,pos\n\"two\nlines\",,neg\nplain,b,pos\n", "csv")
        let rows = try readLabeledExamples(csv)
        #expect(rows.map(\.text) == ["Hello, \"world\"", "two\nlines", "plain"])
        #expect(rows.map(\.textPair) == ["second", "", "b"])
        #expect(rows.map(\.label) == ["pos", "neg", "pos"])
        #expect(rows[2].source.hasSuffix(":5"))
        let tsv = try write("label\ttext\n1\ta \"quoted\" text\n0\tother\n", "tsv")
        #expect(try readLabeledExamples(tsv).map(\.text) == ["a \"quoted\" text", "other"])
        let jsonl = try write(
            "{\"text\": \"x\", \"label\": 2.5}\n\n{\"text\": \"y\", \"text_pair\": \"z\", \"label\": \"-1\"}\n", "jsonl"
        )
        let j = try readLabeledExamples(jsonl)
        #expect(j.map(\.label) == ["2.5", "-1"] && j[1].textPair == "z" && j[0].textPair == nil)
        #expect(
            labelNames(of: [
                LabeledExample(text: "", label: "10"), LabeledExample(text: "", label: "9"),
                LabeledExample(text: "", label: "10"),
            ]) == ["9", "10"])
    }

    /// Windows line ends and a UTF-8 byte-order mark change nothing, in every text format.
    @Test func crlfAndByteOrderMarkReadAsLf() throws {
        func both(_ text: String, _ ext: String) throws -> (lf: URL, crlf: URL) {
            (try write(text, ext), try write("\u{FEFF}" + text.replacingOccurrences(of: "\n", with: "\r\n"), ext))
        }
        let tsv = try both("text\tlabel\nthe first\tpos\nthe second\tneg\n", "tsv")
        #expect(try readLabeledExamples(tsv.crlf).map(\.label) == ["pos", "neg"])
        #expect(try readLabeledExamples(tsv.crlf).map(\.text) == readLabeledExamples(tsv.lf).map(\.text))
        #expect(try readLabeledExamples(tsv.crlf).map(\.text) == ["the first", "the second"])
        let csv = try both("text,label\n\"a, b\",pos\nc,neg\n", "csv")
        #expect(try readLabeledExamples(csv.crlf).map(\.text) == ["a, b", "c"])
        let jsonl = try both("{\"text\": \"x\", \"label\": 1}\n{\"text\": \"y\", \"label\": 0}\n", "jsonl")
        #expect(try readLabeledExamples(jsonl.crlf).map(\.text) == ["x", "y"])
        var conll = ""
        for i in 0..<20 { conll += "word\(i)\tO\nname\tB-PER\n\n" }
        let tagged = try both(conll, "conll")
        let sentences = try readTaggedSentences(tagged.crlf)
        #expect(sentences.count == 20 && sentences.allSatisfy { $0.words.count == 2 && $0.tags == ["O", "B-PER"] })
        #expect(sentences.map(\.words) == (try readTaggedSentences(tagged.lf)).map(\.words))
        let choice = try both("{\"context\": \"c\", \"endings\": [\"a\", \"b\"], \"label\": 1}\n", "jsonl")
        #expect(try readChoiceExamples(choice.crlf).map(\.label) == [1])
    }

    @Test func badRowsNameTheFileAndLine() throws {
        let cases: [(String, String, String)] = [
            ("text,label\na,pos\nb,neg,extra\n", "csv", ":3"),
            ("text,label\na,pos\n\"open,neg\n", "csv", ":3"),
            ("text,label\na,pos\nb,\n", "csv", ":3"),
            ("{\"text\": \"a\", \"label\": 1}\nnot json\n", "jsonl", ":2"),
            ("{\"text\": \"a\", \"label\": 1}\n{\"label\": 1}\n", "jsonl", ":2"),
            ("sentence,label\na,pos\n", "csv", ":2"),
        ]
        for (text, ext, line) in cases {
            let url = try write(text, ext)
            do {
                _ = try readLabeledExamples(url)
                Issue.record("no error for \(text.debugDescription)")
            } catch let e as BertError {
                #expect(e.message.contains(url.path + line), "\(e.message)")
            }
        }
        #expect(throws: BertError.self) { _ = try readLabeledExamples(try write("x", "parquet")) }
    }
}
