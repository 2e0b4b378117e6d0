import EngineAPI
import Foundation

/// The lab's interventions on the engine thread: progress on the status line, Esc stops them
/// (a stopped generation keeps what it made).
extension EngineThread {
    func intervene(_ request: EngineRequest, shouldStop: @escaping () -> Bool) throws {
        _ = try loadingModel()
        defer { post(.progress(nil)) }
        do {
            switch request {
            case .steer(let id, let text, let settings):
                var last: SteerResult?
                post(.progress(JobProgress(title: "steering latent \(settings.latent)", done: 0, total: Double(settings.maxTokens), unit: "tokens")))
                do {
                    let result = try service.steer(text: text, settings: settings, shouldStop: shouldStop) { [weak self] r in
                        last = r
                        self?.post(.steered(id: id, r))
                        self?.post(.progress(JobProgress(title: "steering latent \(settings.latent)",
                                                         done: Double(max(r.steered.count, r.unsteered.count)), total: Double(settings.maxTokens),
                                                         unit: "tokens")))
                    }
                    post(.steered(id: id, result))
                } catch is CancellationError {
                    if var partial = last { partial.done = true; post(.steered(id: id, partial)) }
                    throw CancellationError()
                }
            case .ablate(let id, let text, let latent, let mode):
                post(.progress(JobProgress(title: "ablating latent \(latent) (\(mode.rawValue))", done: 0, total: 1)))
                post(.ablation(id: id, try service.ablate(text: text, latent: latent, mode: mode, shouldStop: shouldStop)))
            case .rank(let id, let text, let position):
                post(.progress(JobProgress(title: "ranking the latents at token \(position + 1)", done: 0, total: 1)))
                post(.ranking(id: id, try service.rank(text: text, position: position, shouldStop: shouldStop)))
            case .patch(let id, let clean, let corrupted, let latent):
                let title = "patching " + (latent.map { "latent \($0)" } ?? "the whole code") + " clean → corrupted"
                post(.progress(JobProgress(title: title, done: 0, total: 1, unit: "tokens")))
                post(.patched(id: id, corrupted: corrupted, try service.patch(clean: clean, corrupted: corrupted, latent: latent, shouldStop: shouldStop) { [weak self] t, n in
                    self?.post(.progress(JobProgress(title: title, done: Double(t), total: Double(n), unit: "tokens")))
                }))
            default: break
            }
        } catch is CancellationError {
            post(.notice("stopped"))
        }
    }

    private func loadingModel() throws -> Intervener {
        post(.progress(JobProgress(title: "loading the model", done: 0, total: 1)))
        return try service.intervener()
    }
}
