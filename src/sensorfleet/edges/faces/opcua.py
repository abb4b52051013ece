"""The OPC UA face: one asyncua server per node process, one object per sensor.

Address space (namespace ``urn:sensorfleet``, string node ids)::

    Objects/Sensors/<sensor_id>/            ns;s=<sensor_id>
        Temperature, Vibration, Voltage      AnalogItemType, Double, ns;s=<sensor_id>.<Name>
            EURange, EngineeringUnits         properties (config min/max; UNECE units)
        StatusCode (Int32), AnomalyFlag (Boolean), AnomalyType (String, null if none)
        FirmwareVersion, Model, Manufacturer, Location   properties, follow hot reload

An equipment sensor's object holds one AnalogItemType variable per channel, named as
the channel (``ns;s=<sensor_id>.power_kw``; EURange from the catalogue's range,
EngineeringUnits by UNECE code where one is known, else UnitId -1 with the symbol),
and, unless the labels are hidden, State, Fault, FaultSeverity, InstrumentFault,
Health, RulSeconds (null while healthy) and Maintenance.

Every reading written to SQLite updates the variables in order with
SourceTimestamp = the reading's timestamp, so a subscription (queue size 0 or
large enough, trigger StatusValueTimestamp to also see repeated values) sees
each reading. A missing-data reading sets Bad_SensorFailure with no value.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from asyncua import Server, ua
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.internal_server import InternalServer

from ...equipment import EquipmentModel
from ...node.config import Config, OpcUa, ParameterRange
from ...node.identity import Identity
from ...node.layout import CLASSIC, Column
from ...node.machine import MachineBlock
from ...node.readings import KIND_NAMES, Block, Readings
from .base import FaceServer, machine_readings, readings_of

NAMESPACE = "urn:sensorfleet"
APPLICATION_URI = "urn:sensorfleet:node"
UNECE_UNITS = "http://www.opcfoundation.org/UA/units/un/cefact"
MISSING = ua.StatusCode(ua.StatusCodes.BadSensorFailure)
GOOD = ua.StatusCode()

# Unit symbols of the layouts' channels → (UNECE Recommendation 20 common code, description).
UNECE_CODES: dict[str, tuple[str, str]] = {
    "°C": ("CEL", "degree Celsius"),
    "mm/s²": ("M41", "millimetre per second squared"),
    "V": ("VLT", "volt"),
    "A": ("AMP", "ampere"),
    "kW": ("KWT", "kilowatt"),
    "kWh": ("KWH", "kilowatt hour"),
    "bar": ("BAR", "bar"),
    "s": ("SEC", "second"),
}
# A machine's label variables (left out while the labels are hidden): name, column, type.
LABEL_VARIABLES: tuple[tuple[str, str, ua.VariantType], ...] = (
    ("State", "state", ua.VariantType.String),
    ("Fault", "fault", ua.VariantType.String),
    ("FaultSeverity", "fault_severity", ua.VariantType.Double),
    ("InstrumentFault", "instrument_fault", ua.VariantType.String),
    ("Health", "health", ua.VariantType.Double),
    ("RulSeconds", "rul_seconds", ua.VariantType.Double),
    ("Maintenance", "maintenance", ua.VariantType.Boolean),
)


def _analog_item(column: Column) -> tuple[str, str, str, str, str]:
    symbol = column.unit or ""
    code, description = UNECE_CODES[symbol]
    return (column.name.capitalize(), column.name, code, symbol, description)


# (browse name, channel, UNECE common code, symbol, description) of the classic sensor.
ANALOG_ITEMS: tuple[tuple[str, str, str, str, str], ...] = tuple(
    _analog_item(column) for column in CLASSIC.channels
)
IDENTITY_PROPERTIES: tuple[tuple[str, str], ...] = (
    ("FirmwareVersion", "firmware_version"),
    ("Model", "model"),
    ("Manufacturer", "manufacturer"),
    ("Location", "location"),
)
_POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256_Sign": ua.SecurityPolicyType.Basic256Sha256_Sign,
    "Basic256Sha256_SignAndEncrypt": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def channel_unit(symbol: str) -> ua.EUInformation:
    """EngineeringUnits of a channel: its UNECE code where known, else UnitId -1 (the
    value OPC UA Part 8 gives a unit without a code) with the symbol as display name."""
    known = UNECE_CODES.get(symbol)
    if known is not None:
        return unece_unit(known[0], symbol, known[1])
    return ua.EUInformation(
        NamespaceUri=UNECE_UNITS,
        UnitId=-1,
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(symbol),
    )


def unece_unit(code: str, symbol: str, description: str) -> ua.EUInformation:
    """EUInformation for a UNECE Recommendation 20 common code (OPC UA Part 8)."""
    unit_id = 0
    for char in code:
        unit_id = (unit_id << 8) | ord(char)
    return ua.EUInformation(
        NamespaceUri=UNECE_UNITS,
        UnitId=unit_id,
        DisplayName=ua.LocalizedText(symbol),
        Description=ua.LocalizedText(description),
    )


def source_time(time_us: int) -> datetime:
    """A reading's timestamp as a UTC datetime, to the microsecond."""
    return _EPOCH + timedelta(microseconds=time_us)


@dataclass(frozen=True)
class _SensorNodes:
    values: tuple[ua.NodeId, ua.NodeId, ua.NodeId]
    status: ua.NodeId
    flag: ua.NodeId
    kind: ua.NodeId


@dataclass(frozen=True)
class _MachineNodes:
    channels: tuple[ua.NodeId, ...]  # catalogue order
    labels: tuple[ua.NodeId, ...]  # LABEL_VARIABLES order; empty while hidden


class _PasswordUsers:
    """Lets in exactly one username/password pair (asyncua's user manager protocol)."""

    def __init__(self, username: str, password: str) -> None:
        self._username = username.encode()
        self._password = password.encode()

    def get_user(
        self,
        iserver: InternalServer,
        username: str | None = None,
        password: str | None = None,
        certificate: Any = None,
    ) -> User | None:
        given_user = (username or "").encode()
        given_password = (password or "").encode()
        if hmac.compare_digest(given_user, self._username) and hmac.compare_digest(
            given_password, self._password
        ):
            return User(role=UserRole.User, name=username)
        return None


class OpcUaServer(FaceServer):
    """Serves every sensor of the node under ``Objects/Sensors``."""

    def __init__(
        self,
        config: Config,
        identities: Sequence[Identity],
        host: str,
        port: int,
        models: Sequence[EquipmentModel | None] = (),
    ) -> None:
        super().__init__(config, identities, host, port, models)
        self.settings: OpcUa = config.opcua
        self.server: Server | None = None
        self.namespace_index = 0
        self._nodes: list[_SensorNodes | _MachineNodes] = []
        self._object_ids: list[str] = []

    # ---- building -------------------------------------------------------------------
    async def serve(self) -> int:
        settings = self.settings
        users = (
            _PasswordUsers(settings.username, settings.password.get_secret_value())
            if settings.username is not None and settings.password is not None
            else None
        )
        server = Server(user_manager=users)
        await server.init()
        host = f"[{self.host}]" if ":" in self.host else self.host
        server.set_endpoint(f"opc.tcp://{host}:{self.port}/")
        server.set_server_name("sensorfleet")
        await server.set_application_uri(APPLICATION_URI)
        server.set_security_policy([_POLICIES[p] for p in settings.security_policies])
        if settings.certificate and settings.private_key:
            await server.load_certificate(settings.certificate)
            await server.load_private_key(settings.private_key)
        # Anonymous, or exactly the configured login (then anonymous is refused).
        server.set_identity_tokens(
            [ua.UserNameIdentityToken if users is not None else ua.AnonymousIdentityToken]
        )
        self.namespace_index = await server.register_namespace(NAMESPACE)
        await self._build(server)
        with _quiet_start_failure():
            await server.start()
        self.server = server
        assert server.bserver is not None
        return int(server.bserver.port)

    async def _build(self, server: Server) -> None:
        ns = self.namespace_index
        folder = ua.NodeId("Sensors", ns)
        items = [
            _object_item(
                ua.NodeId(ua.ObjectIds.ObjectsFolder),
                folder,
                ua.QualifiedName("Sensors", ns),
                ua.ObjectIds.FolderType,
                ua.ObjectIds.Organizes,
            )
        ]
        ranges = self.config.normal_parameters
        for identity, model in zip(self.identities, self.models, strict=True):
            sensor = ua.NodeId(identity.id, ns)
            items.append(
                _object_item(
                    folder,
                    sensor,
                    ua.QualifiedName(identity.id, ns),
                    ua.ObjectIds.BaseObjectType,
                    ua.ObjectIds.Organizes,
                )
            )
            items.extend(self._identity_items(sensor, identity))
            self._object_ids.append(identity.id)
            if model is not None:
                self._nodes.append(self._machine_items(sensor, identity, model, items))
                continue
            values = []
            for name, parameter, code, symbol, description in ANALOG_ITEMS:
                node = ua.NodeId(f"{identity.id}.{name}", ns)
                values.append(node)
                items.append(
                    _variable_item(
                        sensor,
                        node,
                        ua.QualifiedName(name, ns),
                        ua.Variant(),  # null until the first reading
                        ua.ObjectIds.Double,
                        ua.ObjectIds.AnalogItemType,
                    )
                )
                eu_range = _eu_range(getattr(ranges, parameter))
                unit = unece_unit(code, symbol, description)
                items.append(_property_item(node, f"{identity.id}.{name}.EURange", "EURange",
                                            ua.Variant(eu_range), ua.ObjectIds.Range))  # fmt: skip
                items.append(_property_item(node, f"{identity.id}.{name}.EngineeringUnits",
                                            "EngineeringUnits", ua.Variant(unit),
                                            ua.ObjectIds.EUInformation))  # fmt: skip
            ids = {}
            for name, variant_type in (
                ("StatusCode", ua.VariantType.Int32),
                ("AnomalyFlag", ua.VariantType.Boolean),
                ("AnomalyType", ua.VariantType.String),
            ):
                ids[name] = ua.NodeId(f"{identity.id}.{name}", ns)
                items.append(
                    _variable_item(
                        sensor,
                        ids[name],
                        ua.QualifiedName(name, ns),
                        ua.Variant(),
                        getattr(ua.ObjectIds, variant_type.name),
                        ua.ObjectIds.BaseDataVariableType,
                    )
                )
            self._nodes.append(
                _SensorNodes(
                    (values[0], values[1], values[2]),
                    ids["StatusCode"],
                    ids["AnomalyFlag"],
                    ids["AnomalyType"],
                )
            )
        for result in await server.iserver.isession.add_nodes(items):
            result.StatusCode.check()

    @staticmethod
    def _identity_items(sensor: ua.NodeId, identity: Identity) -> list[ua.AddNodesItem]:
        return [
            _property_item(
                sensor,
                f"{identity.id}.{name}",
                name,
                ua.Variant(getattr(identity, field), ua.VariantType.String),
                ua.ObjectIds.String,
            )
            for name, field in IDENTITY_PROPERTIES
        ]

    def _machine_items(
        self,
        sensor: ua.NodeId,
        identity: Identity,
        model: EquipmentModel,
        items: list[ua.AddNodesItem],
    ) -> _MachineNodes:
        """A machine's channels as AnalogItems (EURange from the catalogue's range, units),
        and its labels as variables unless they are hidden; appended to ``items``."""
        ns = self.namespace_index
        channels = []
        for channel in model.channels:
            node = ua.NodeId(f"{identity.id}.{channel.name}", ns)
            channels.append(node)
            items.append(_variable_item(sensor, node, ua.QualifiedName(channel.name, ns),
                                        ua.Variant(), ua.ObjectIds.Double,
                                        ua.ObjectIds.AnalogItemType))  # fmt: skip
            low = channel.minimum if channel.minimum is not None else float("-inf")
            high = channel.maximum if channel.maximum is not None else float("inf")
            items.append(_property_item(node, f"{identity.id}.{channel.name}.EURange", "EURange",
                                        ua.Variant(ua.Range(Low=low, High=high)),
                                        ua.ObjectIds.Range))  # fmt: skip
            items.append(_property_item(node, f"{identity.id}.{channel.name}.EngineeringUnits",
                                        "EngineeringUnits", ua.Variant(channel_unit(channel.unit)),
                                        ua.ObjectIds.EUInformation))  # fmt: skip
        labels = []
        for name, _column, variant_type in () if self.labels_hidden else LABEL_VARIABLES:
            node = ua.NodeId(f"{identity.id}.{name}", ns)
            labels.append(node)
            items.append(_variable_item(sensor, node, ua.QualifiedName(name, ns), ua.Variant(),
                                        getattr(ua.ObjectIds, variant_type.name),
                                        ua.ObjectIds.BaseDataVariableType))  # fmt: skip
        return _MachineNodes(tuple(channels), tuple(labels))

    # ---- serving --------------------------------------------------------------------
    async def apply(self, position: int, block: Readings) -> int:
        server = self.server
        assert server is not None
        nodes = self._nodes[position]
        if isinstance(nodes, _MachineNodes):
            assert isinstance(block, MachineBlock)
            return await self._apply_machine(nodes, block)
        assert isinstance(block, Block)
        write = server.iserver.aspace.write_attribute_value
        value_attr = ua.AttributeIds.Value
        now = datetime.now(UTC)
        published = 0
        for reading in readings_of(block):
            stamp = source_time(reading.time_us)
            measured = (reading.temperature, reading.vibration, reading.voltage)
            for node, value in zip(nodes.values, measured, strict=True):
                await write(node, value_attr, _measured(value, stamp, now))
            flag = reading.kind > 0
            for node, variant in (
                (nodes.status, ua.Variant(int(flag), ua.VariantType.Int32)),
                (nodes.flag, ua.Variant(flag, ua.VariantType.Boolean)),
                (nodes.kind, ua.Variant(KIND_NAMES[reading.kind], ua.VariantType.String)),
            ):
                await write(node, value_attr, _data_value(variant, GOOD, stamp, now))
            published += 1
        return published

    async def _apply_machine(self, nodes: _MachineNodes, block: MachineBlock) -> int:
        server = self.server
        assert server is not None
        write = server.iserver.aspace.write_attribute_value
        value_attr = ua.AttributeIds.Value
        now = datetime.now(UTC)
        published = 0
        for reading in machine_readings(block):
            stamp = source_time(reading.time_us)
            for node, value in zip(nodes.channels, reading.channels, strict=True):
                await write(node, value_attr, _measured(value, stamp, now))
            labels: tuple[object, ...] = (
                reading.state,
                reading.fault,
                reading.fault_severity,
                reading.instrument_fault,
                reading.health,
                None if reading.rul_seconds != reading.rul_seconds else reading.rul_seconds,
                reading.maintenance,
            )
            for node, label, (_, _, variant_type) in zip(
                nodes.labels, labels, LABEL_VARIABLES, strict=False
            ):
                variant = ua.Variant() if label is None else ua.Variant(label, variant_type)
                await write(node, value_attr, _data_value(variant, GOOD, stamp, now))
            published += 1
        return published

    async def reconfigure(self, config: Config, identities: Sequence[Identity]) -> None:
        self.config, self.identities = config, list(identities)
        server = self.server
        assert server is not None
        ns = self.namespace_index
        ranges = self.config.normal_parameters
        for identity, object_id, model in zip(
            self.identities, self._object_ids, self.models, strict=True
        ):
            updates: list[tuple[str, ua.Variant]] = [
                (f"{object_id}.{name}", ua.Variant(getattr(identity, field), ua.VariantType.String))
                for name, field in IDENTITY_PROPERTIES
            ]
            if model is None:  # the classic ranges come from the config
                updates.extend(
                    (
                        f"{object_id}.{name}.EURange",
                        ua.Variant(_eu_range(getattr(ranges, parameter))),
                    )
                    for name, parameter, *_ in ANALOG_ITEMS
                )
            for node_id, variant in updates:
                node = ua.NodeId(node_id, ns)
                if server.read_attribute_value(node).Value != variant:
                    await server.write_attribute_value(node, ua.DataValue(variant))

    async def close(self) -> None:
        if self.server is not None:
            await self.server.stop()

    def describe(self) -> dict[str, object]:
        return {
            "namespace": NAMESPACE,
            "namespace_index": self.namespace_index,
            "security_policies": ",".join(self.settings.security_policies),
            "login": "username" if self.settings.username else "anonymous",
        }


@contextmanager
def _quiet_start_failure() -> Iterator[None]:
    """Drop asyncua's own record of a failed start (a port taken, an address not ours).

    asyncua logs it with a traceback and then raises; the face logs the raised error as
    its one ``opcua unavailable`` line, so the library's record would only repeat it.
    """

    def drop_failure(record: logging.LogRecord) -> bool:
        return not (record.levelno >= logging.ERROR and record.exc_info)

    library = logging.getLogger("asyncua.server.server")
    library.addFilter(drop_failure)
    try:
        yield
    finally:
        library.removeFilter(drop_failure)


def every_reading(node: ua.NodeId, handle: int) -> ua.MonitoredItemCreateRequest:
    """A client's monitored item that receives every reading of ``node``, repeats included.

    Queue size 0 (the server's maximum), sampling interval 0 and the trigger
    StatusValueTimestamp; pass a unique ``handle`` per item of a subscription.
    """
    trigger = ua.DataChangeFilter()
    trigger.Trigger = ua.DataChangeTrigger.StatusValueTimestamp
    parameters = ua.MonitoringParameters()
    parameters.ClientHandle = handle
    parameters.SamplingInterval = 0
    parameters.QueueSize = 0
    parameters.DiscardOldest = True
    parameters.Filter = trigger
    item = ua.ReadValueId()
    item.NodeId = node
    item.AttributeId = ua.AttributeIds.Value
    request = ua.MonitoredItemCreateRequest()
    request.ItemToMonitor = item
    request.MonitoringMode = ua.MonitoringMode.Reporting
    request.RequestedParameters = parameters
    return request


def _data_value(
    value: ua.Variant, status: ua.StatusCode, source: datetime, server: datetime
) -> ua.DataValue:
    # Positional: the status field's keyword is StatusCode_ before asyncua 2.0.
    return ua.DataValue(value, status, source, server)


def _measured(value: float, source: datetime, server: datetime) -> ua.DataValue:
    """A measured value; NaN (NULL in SQLite: missing data, an instrument dropout) is
    Bad_SensorFailure with no value."""
    if value != value:
        return _data_value(ua.Variant(), MISSING, source, server)
    return _data_value(ua.Variant(value, ua.VariantType.Double), GOOD, source, server)


def _eu_range(parameter: ParameterRange) -> ua.Range:
    return ua.Range(Low=parameter.min, High=parameter.max)


def _object_item(
    parent: ua.NodeId, node: ua.NodeId, name: ua.QualifiedName, type_id: int, reference: int
) -> ua.AddNodesItem:
    attrs = ua.ObjectAttributes()
    attrs.EventNotifier = 0
    return _item(parent, node, name, ua.NodeClass.Object, attrs, type_id, reference)


def _variable_item(
    parent: ua.NodeId,
    node: ua.NodeId,
    name: ua.QualifiedName,
    value: ua.Variant,
    data_type: int,
    type_id: int,
    reference: int = ua.ObjectIds.HasComponent,
) -> ua.AddNodesItem:
    attrs = ua.VariableAttributes()
    attrs.DataType = ua.NodeId(data_type)
    attrs.Value = value
    attrs.ValueRank = ua.ValueRank.Scalar
    attrs.AccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.UserAccessLevel = ua.AccessLevel.CurrentRead.mask
    attrs.Historizing = False
    return _item(parent, node, name, ua.NodeClass.Variable, attrs, type_id, reference)


def _item(
    parent: ua.NodeId,
    node: ua.NodeId,
    name: ua.QualifiedName,
    node_class: ua.NodeClass,
    attrs: Any,
    type_id: int,
    reference: int,
) -> ua.AddNodesItem:
    attrs.DisplayName = ua.LocalizedText(name.Name)
    attrs.Description = ua.LocalizedText(name.Name)
    # Set field by field, as asyncua does itself: keyword names differ across its versions.
    item = ua.AddNodesItem()
    item.ParentNodeId = parent
    item.ReferenceTypeId = ua.NodeId(reference)
    item.RequestedNewNodeId = node
    item.BrowseName = name
    item.NodeClass = node_class
    item.NodeAttributes = attrs
    item.TypeDefinition = ua.NodeId(type_id)
    return item


def _property_item(
    parent: ua.NodeId, node_id: str, name: str, value: ua.Variant, data_type: int
) -> ua.AddNodesItem:
    # Standard properties (EURange, EngineeringUnits) are named in namespace 0.
    name_space = 0 if name in ("EURange", "EngineeringUnits") else parent.NamespaceIndex
    return _variable_item(
        parent,
        ua.NodeId(node_id, parent.NamespaceIndex),
        ua.QualifiedName(name, name_space),
        value,
        data_type,
        ua.ObjectIds.PropertyType,
        ua.ObjectIds.HasProperty,
    )
