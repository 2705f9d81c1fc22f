/**
 * Handlers of the task command router: exec start (a command in the local sandbox, or the SDK's
 * filesystem tool, which the emulator answers itself), stdio reads by offset, stdin writes by
 * offset, stdin status, poll and wait.
 */
import * as grpc from '@grpc/grpc-js';
import { SandboxError } from '../../../src/kit/index.js';
import { ExecRecord } from '../shared/exec-record.js';
import { fsToolsPath, runFsTool } from './modal-fs-tools.js';
import { RpcError, asRpcError, type Json, type RpcHandlers } from './modal-rpc.js';
import { containerSandbox } from './modal-sidecars.js';
import type { EmulatedSandbox, ModalState } from './modal-state.js';
import { terminalExecOptions } from './modal-stdio.js';
import { syncVolumes } from './modal-volumes.js';

type ExecRpc =
  | 'taskExecStart'
  | 'taskExecStdioRead'
  | 'taskExecStdinWrite'
  | 'taskExecStdinWriteStream'
  | 'taskExecStdinStatus'
  | 'taskExecPoll'
  | 'taskExecWait';

export function execHandlers(state: ModalState): Pick<RpcHandlers, ExecRpc> {
  return {
    async taskExecStart(request) {
      const found = state.runningTask(request.taskId);
      if (found.data.execs.has(request.execId)) return {}; // a retried start
      const argv: string[] = request.commandArgs ?? [];
      if (argv.length === 0) throw new RpcError(grpc.status.INVALID_ARGUMENT, 'An exec needs a command');
      const record =
        argv[0] === fsToolsPath
          ? await runFsTool(containerSandbox(found, request.containerId), argv[1] ?? '', state.fsTools).catch((error: unknown) => {
              throw asRpcError(error);
            })
          : // `sync <mountpoint>` commits a v2 volume (modal-volumes.ts).
            (!request.containerId && (await syncVolumes(state, found, argv))) || (await startCommand(state, found, request, argv));
      found.data.execs.set(request.execId, record);
      return {};
    },
    async *taskExecStdioRead(request) {
      const record = state.exec(request);
      const pipe = request.fileDescriptor === 1 ? record.stderr : record.stdout;
      let offset = request.offset;
      for (;;) {
        const chunk = await pipe.take(offset);
        if (!chunk) return;
        offset += chunk.byteLength;
        yield { data: chunk };
      }
    },
    async taskExecStdinWrite(request) {
      await state.exec(request).writeStdin(request.offset, request.data, request.eof);
      return {};
    },
    async taskExecStdinWriteStream(_request, call) {
      let record: ExecRecord | undefined;
      let offset = 0;
      for await (const message of call as grpc.ServerReadableStream<Json, Json>) {
        if (message.start) {
          record = state.exec(message.start);
          offset = message.start.offset;
        } else if (message.data && record) {
          await record.writeStdin(offset, message.data, false);
          offset += message.data.byteLength;
        } else if (message.end && record) {
          await record.writeStdin(offset, new Uint8Array(), true);
        } else if (!record) {
          throw new RpcError(grpc.status.INVALID_ARGUMENT, 'The stdin stream must begin with a start message');
        }
      }
      return {};
    },
    async taskExecStdinStatus(request) {
      return state.exec(request).stdinStatus;
    },
    async taskExecPoll(request) {
      return exitResponse(state.exec(request).exit);
    },
    async taskExecWait(request) {
      return exitResponse(await state.exec(request).exited);
    },
  };
}

async function startCommand(state: ModalState, found: EmulatedSandbox, request: Json, argv: string[]): Promise<ExecRecord> {
  try {
    const process = await containerSandbox(found, request.containerId).exec(argv, {
      cwd: request.workdir || undefined,
      // With ptyInfo (the SDK's `pty: true`), on a terminal of the size and TERM it sent.
      ...terminalExecOptions(request.ptyInfo, state.env(request.secretSources, request.secretIds, request.env)),
    });
    const record = ExecRecord.running(process, { stdout: request.stdoutConfig !== 0, stderr: request.stderrConfig !== 0 });
    if (request.timeoutSecs) {
      const timer = setTimeout(() => void process.kill(), request.timeoutSecs * 1000);
      void record.exited.then(() => clearTimeout(timer));
    }
    return record;
  } catch (error) {
    // Like a shell: a missing program or directory is a failed command, not a failed call.
    if (SandboxError.isInstance(error) && error.code === 'invalid_argument') {
      return ExecRecord.finished(
        new Uint8Array(),
        new TextEncoder().encode(`${error.message}\n`),
        (error as { argument?: string }).argument === 'cwd' ? 1 : 127,
      );
    }
    throw asRpcError(error);
  }
}

function exitResponse(exit: ExecRecord['exit']): Json {
  if (!exit) return {};
  if ('gone' in exit) throw new RpcError(grpc.status.NOT_FOUND, `The sandbox ended while the command ran: ${exit.gone}`);
  return exit;
}
