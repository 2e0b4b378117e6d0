import Formats
import Foundation
import Kernels
import Model
import Storage
import Tokenizer

/// The one place a simulator backend is made for a workspace (the CLI and the explorer both ask here).
public enum Simulators {
    /// The trained simulator when the workspace has one, else the prompted all-at-once one.
    public static func defaultKind(for workspace: Workspace) -> SimulatorKind {
        workspace.hasTrainedSimulator ? .trained : .promptedAll
    }

    public static func make(_ kind: SimulatorKind, workspace: Workspace, session: Session) throws -> SimulatorBackend {
        switch kind {
        case .trained: return try TrainedSimulator(workspace: workspace, session: session)
        case .promptedAll, .promptedLast: return try LocalSimulator(session: session)
        }
    }
}
