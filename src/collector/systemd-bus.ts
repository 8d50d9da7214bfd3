/**
 * The port to systemd's manager on the system bus, and its dbus-next
 * implementation. Only what the collector needs: start/stop jobs, JobRemoved,
 * the unit's state and its PropertiesChanged.
 */
import dbus from 'dbus-next';

export interface UnitState {
  loadState: string; // loaded | not-found | masked | error ...
  activeState: string; // active | inactive | failed | activating | deactivating | reloading
  subState: string;
}

export interface JobRemoved {
  id: number;
  job: string;
  unit: string;
  result: string; // done | canceled | timeout | failed | dependency | skipped
}

export interface SystemdBus {
  /** Connects and subscribes to manager signals (idempotent). */
  connect(): Promise<void>;
  onJobRemoved(cb: (j: JobRemoved) => void): () => void;
  startUnit(unit: string): Promise<string>;
  stopUnit(unit: string): Promise<string>;
  unitState(unit: string): Promise<UnitState>;
  /** Calls back with the unit's new state whenever its properties change. */
  watchUnit(unit: string, cb: (s: Partial<UnitState>) => void): Promise<void>;
  /** Called once when the bus connection is lost. */
  onDisconnect(cb: (err: Error) => void): void;
  close(): void;
}

const DEST = 'org.freedesktop.systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const PROPS = 'org.freedesktop.DBus.Properties';

/**
 * The members we use, given to getProxyObject as its introspection data: without it dbus-next
 * asks the object to introspect itself (the manager's XML, and a unit's with its several hundred
 * properties) and parses that with a JavaScript XML parser, twice on the way to READY
 * (docs/PERFORMANCE.md). Signatures as in org.freedesktop.systemd1(5).
 */
const MANAGER_XML = `<node><interface name="${MANAGER}">
<method name="Subscribe"/>
<method name="StartUnit"><arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="o" direction="out"/></method>
<method name="StopUnit"><arg type="s" direction="in"/><arg type="s" direction="in"/><arg type="o" direction="out"/></method>
<signal name="JobRemoved"><arg type="u"/><arg type="o"/><arg type="s"/><arg type="s"/></signal>
</interface></node>`;
const PROPS_XML = `<node><interface name="${PROPS}">
<signal name="PropertiesChanged"><arg type="s"/><arg type="a{sv}"/><arg type="as"/></signal>
</interface></node>`;

type Fn = (...args: unknown[]) => Promise<unknown>;

/** Reads a Variant's value; 64-bit numbers arrive as BigInt and are left alone here. */
function v(x: unknown): unknown {
  return x instanceof dbus.Variant ? x.value : x;
}

export class DbusSystemd implements SystemdBus {
  private bus: dbus.MessageBus | null = null;
  private manager: dbus.ClientInterface | null = null;
  private readonly jobListeners = new Set<(j: JobRemoved) => void>();
  private disconnectCb: ((err: Error) => void) | null = null;

  async connect(): Promise<void> {
    if (this.manager) return;
    const bus = dbus.systemBus();
    bus.on('error', (err: Error) => this.lost(err));
    // dbus-next reports a closed stream as an error on the connection; both mean "reconnect".
    const obj = await bus.getProxyObject(DEST, '/org/freedesktop/systemd1', MANAGER_XML);
    const manager = obj.getInterface(MANAGER);
    // Subscribe BEFORE any job is started, so no JobRemoved can be missed.
    await (manager.Subscribe as Fn)();
    manager.on('JobRemoved', (id: number, job: string, unit: string, result: string) => {
      for (const cb of this.jobListeners) cb({ id, job, unit, result });
    });
    this.bus = bus;
    this.manager = manager;
  }

  private lost(err: Error): void {
    if (!this.bus) return;
    this.bus = null;
    this.manager = null;
    this.disconnectCb?.(err);
  }

  private mgr(): dbus.ClientInterface {
    if (!this.manager) throw new Error('not connected to the system bus');
    return this.manager;
  }

  onJobRemoved(cb: (j: JobRemoved) => void): () => void {
    this.jobListeners.add(cb);
    return () => this.jobListeners.delete(cb);
  }

  async startUnit(unit: string): Promise<string> {
    return String(await (this.mgr().StartUnit as Fn)(unit, 'replace'));
  }

  async stopUnit(unit: string): Promise<string> {
    return String(await (this.mgr().StopUnit as Fn)(unit, 'replace'));
  }

  /**
   * A plain method call, without a proxy object: getProxyObject introspects the object (an XML
   * document of a few hundred properties for a unit) on every call, which made the collector's
   * every-5-s state read the agent's largest idle CPU cost.
   */
  private async call(path: string, iface: string, member: string, signature: string, body: unknown[]): Promise<unknown[]> {
    if (!this.bus) throw new Error('not connected to the system bus');
    const reply = await this.bus.call(new dbus.Message({ destination: DEST, path, interface: iface, member, signature, body }));
    return reply?.body ?? [];
  }

  /** LoadUnit (not GetUnit) so a stopped, unloaded unit still has an object. */
  private async unitPath(unit: string): Promise<string> {
    const [path] = await this.call('/org/freedesktop/systemd1', MANAGER, 'LoadUnit', 's', [unit]);
    return String(path);
  }

  async unitState(unit: string): Promise<UnitState> {
    const path = await this.unitPath(unit);
    const get = async (name: string): Promise<string> => String(v((await this.call(path, PROPS, 'Get', 'ss', [UNIT, name]))[0]));
    const [loadState, activeState, subState] = await Promise.all([get('LoadState'), get('ActiveState'), get('SubState')]);
    return { loadState, activeState, subState };
  }

  async watchUnit(unit: string, cb: (s: Partial<UnitState>) => void): Promise<void> {
    // Once per connection (the match rule for the signal is added here).
    const props = (await this.bus!.getProxyObject(DEST, await this.unitPath(unit), PROPS_XML)).getInterface(PROPS);
    props.on('PropertiesChanged', (iface: string, changed: Record<string, unknown>) => {
      if (iface !== UNIT) return;
      const s: Partial<UnitState> = {};
      if ('ActiveState' in changed) s.activeState = String(v(changed.ActiveState));
      if ('SubState' in changed) s.subState = String(v(changed.SubState));
      if ('LoadState' in changed) s.loadState = String(v(changed.LoadState));
      if (Object.keys(s).length) cb(s);
    });
  }

  onDisconnect(cb: (err: Error) => void): void {
    this.disconnectCb = cb;
  }

  close(): void {
    const bus = this.bus;
    this.bus = null;
    this.manager = null;
    bus?.disconnect();
  }
}
