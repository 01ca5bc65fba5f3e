// Fine-tunes a pretrained BERT as a sentiment classifier with the library (no command line),
// saves it as a Hugging Face folder, opens the folder again and predicts.
//
//     swift run -c release FineTuneClassifier [MODEL] [OUT]
//
// MODEL is a folder or a hub id (default: sentence-transformers/all-MiniLM-L6-v2); OUT is the
// folder written (default: a temporary one). Exits 1 when the model reopened from OUT computes
// other logits than the one trained, or gets the held-out sentences mostly wrong: the example
// checks itself.
import Bert
import BertHub
import BertTokenizer
import Foundation

let arguments = Array(CommandLine.arguments.dropFirst())
let model = arguments.first ?? "sentence-transformers/all-MiniLM-L6-v2"
let out =
    arguments.count > 1
    ? URL(fileURLWithPath: arguments[1])
    : FileManager.default.temporaryDirectory.appendingPathComponent("bert-example-\(UUID().uuidString)")

let positive = [
    "A wonderful, moving film.", "I loved every minute of it.", "The acting is superb.",
    "A delightful and clever comedy.", "Beautifully shot and deeply felt.", "One of the best films of the year.",
    "Funny, warm and smart.", "A triumph from start to finish.", "The cast is brilliant.",
    "An absolute joy to watch.", "Gripping and beautifully acted.", "A charming, heartfelt story.",
]
let negative = [
    "A dull, lifeless film.", "I hated every minute of it.", "The acting is wooden.",
    "A tedious and clumsy comedy.", "Ugly to look at and empty inside.", "One of the worst films of the year.",
    "Unfunny, cold and stupid.", "A disaster from start to finish.", "The cast is wasted.",
    "A chore to sit through.", "Boring and badly acted.", "A cynical, hollow story.",
]
let train =
    positive.map { LabeledExample(text: $0, label: "positive") }
    + negative.map { LabeledExample(text: $0, label: "negative") }
let heldOut = [
    LabeledExample(text: "A lovely, touching film with a great cast.", label: "positive"),
    LabeledExample(text: "Smart, funny and full of heart.", label: "positive"),
    LabeledExample(text: "A boring mess with terrible acting.", label: "negative"),
    LabeledExample(text: "Stupid, dull and far too long.", label: "negative"),
]

do {
    let folder = try Hub.modelFolder(model)
    let tokenizer = try BertTokenizer(modelFolder: folder)
    // The encoder's weights from the folder, a new classifier on top.
    let (network, initialised) = try BertForSequenceClassification.fromPretrained(
        folder: folder, task: .classification, labels: labelNames(of: train), seed: 42)
    print("newly initialised: \(initialised.joined(separator: ", "))")
    var options = FineTuneOptions()
    options.epochs = 8
    options.batchSize = 8
    options.learningRate = 2e-4
    options.maxLength = 32
    let tuner = SequenceFineTuner(
        model: network, tokenizer: tokenizer, options: options, output: try OutputFolder(out, overwrite: false))
    // No validation set: every epoch is saved, so the folder holds the model as trained last.
    try tuner.train(
        train, validation: [],
        report: { report in print("epoch \(report.epoch)  train loss \(String(format: "%.4f", report.trainLoss))") })
    let trained = try tuner.logits(heldOut)

    // The saved folder is a BertForSequenceClassification that transformers loads as well.
    let reopened = try BertForSequenceClassification(folder: out)
    reopened.prepareForInference()
    let predictor = SequenceFineTuner(model: reopened, tokenizer: try BertTokenizer(modelFolder: out), options: options)
    let metrics = try predictor.evaluate(heldOut)
    let logits = try predictor.logits(heldOut)
    for (example, row) in zip(heldOut, logits) {
        let best = row.indices.max { row[$0] < row[$1] }!
        print("\(reopened.labels[best])  \(example.text)")
    }
    print("held-out accuracy of the saved model: \(metrics["accuracy"] ?? 0) (written to \(out.path))")
    if arguments.count < 2 { try? FileManager.default.removeItem(at: out) }
    let drift = zip(trained.joined(), logits.joined()).map { abs($0 - $1) }.max() ?? .infinity
    guard drift <= 1e-4 else {
        print("the saved model's logits differ from the trained one's by \(drift)")
        exit(1)
    }
    guard (metrics["accuracy"] ?? 0) >= 0.75 else {
        print("the classifier did not learn the task")
        exit(1)
    }
} catch {
    print("error: \(error)")
    exit(1)
}
