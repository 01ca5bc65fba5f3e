import Bert
import BertCompute
import Foundation
import Testing

// The four fine-tuning heads through the one TaskHead protocol: each made on the same pretrained
// encoder by `fromPretrained(folder:settings:seed:)`, its output taken by `logits`, its loss
// gradient (`lossAndGradients(_:targets:into:dropout:)`) checked against central differences. The
// checks are written once, generically, as a trainer or a server would use any head.

/// A small pretrained encoder folder, written once.
private let encoderFolder: URL = {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("task-heads-\(UUID().uuidString)")
    var c = BertConfig()
    c.vocabSize = 40
    c.hiddenSize = 16
    c.numHiddenLayers = 1
    c.numAttentionHeads = 2
    c.intermediateSize = 24
    c.maxPositionEmbeddings = 16
    c.hiddenDropoutProb = 0
    c.attentionProbsDropoutProb = 0
    let model = try! BertModel(config: c)
    model.initializeWeights(seed: 5)
    try! model.save(to: url)
    return url
}()

/// Made on the encoder, the head has the encoder's weights, a fresh head, and a gradient that is
/// the derivative of its loss; its output has the expected size.
private func checkHead<H: TaskHead>(
    _: H.Type, settings: H.Settings, batch: EncoderBatch, targets: H.Targets, outputCount: (H.Output) -> Int,
    expectedCount: Int, headTensor: String, sourceLocation: SourceLocation = #_sourceLocation
) throws {
    let (head, initialised) = try H.fromPretrained(folder: encoderFolder, settings: settings, seed: 3)
    #expect(initialised.contains(headTensor), "\(initialised)", sourceLocation: sourceLocation)
    #expect(!initialised.contains { $0.hasPrefix("bert.encoder.") }, sourceLocation: sourceLocation)
    let encoder = try BertModel(folder: encoderFolder)
    let word = try #require(head.parameters.layout.tensor(named: "bert.embeddings.word_embeddings.weight"))
    #expect(
        head.parameters.values(word)
            == encoder.parameters.values(
                try #require(encoder.parameters.layout.tensor(named: "embeddings.word_embeddings.weight"))),
        sourceLocation: sourceLocation)
    #expect(outputCount(try head.logits(batch)) == expectedCount, sourceLocation: sourceLocation)

    let grads = try head.makeGradients()
    let loss = try head.lossAndGradients(batch, targets: targets, into: grads, dropout: nil)
    #expect(loss.isFinite && loss > 0, sourceLocation: sourceLocation)
    let checked = try expectFiniteDifferencesMatch(
        head.parameters, gradients: grads,
        tensors: [headTensor, "bert.encoder.layer.0.output.dense.weight", "bert.embeddings.LayerNorm.weight"],
        perTensor: 4, sourceLocation: sourceLocation
    ) {
        try head.lossAndGradients(batch, targets: targets, into: try head.makeGradients(), dropout: nil)
    }
    #expect(checked >= 12, sourceLocation: sourceLocation)
}

@Suite struct TaskHeadTests {
    // Two rows of different lengths (padding in the second).
    let batch = EncoderBatch.padded([[2, 11, 17, 23, 3], [2, 31, 3]])

    @Test func sequenceClassificationAndRegression() throws {
        try checkHead(
            BertForSequenceClassification.self,
            settings: SequenceHeadSettings(task: .classification, labels: ["no", "maybe", "yes"]), batch: batch,
            targets: .classes([2, 0]), outputCount: { $0.count }, expectedCount: 2 * 3,
            headTensor: "classifier.weight")
        try checkHead(
            BertForSequenceClassification.self, settings: SequenceHeadSettings(task: .regression, labels: ["score"]),
            batch: batch, targets: .values([0.5, -1.25]), outputCount: { $0.count }, expectedCount: 2,
            headTensor: "classifier.weight")
    }

    @Test func tokenClassification() throws {
        try checkHead(
            BertForTokenClassification.self, settings: ["O", "B-X", "I-X"], batch: batch,
            targets: [-100, 1, 2, 0, -100, -100, 1, -100, -100, -100], outputCount: { $0.count },
            expectedCount: 2 * 5 * 3, headTensor: "classifier.weight")
    }

    @Test func questionAnswering() throws {
        try checkHead(
            BertForQuestionAnswering.self, settings: (), batch: batch,
            targets: AnswerSpans(starts: [1, 1], ends: [3, 1]),
            outputCount: { $0.start.count + $0.end.count }, expectedCount: 2 * 2 * 5, headTensor: "qa_outputs.weight")
    }

    @Test func multipleChoice() throws {
        let choices = EncoderBatch.padded([[2, 11, 3, 17, 3], [2, 11, 3, 23, 3], [2, 11, 3, 29, 3]])
        try checkHead(
            BertForMultipleChoice.self, settings: (), batch: choices, targets: ChoiceTargets(choices: 3, labels: [1]),
            outputCount: { $0.count }, expectedCount: 3, headTensor: "classifier.weight")
    }
}
