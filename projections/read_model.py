"""The Redis read model's key layout: where each customer, checkpoint and meta record lives.

Layout v2 (PREFIX defaults to "customers"; generations make rebuilds blue/green):

    {PREFIX}:generation            current generation number (string int)
    {PREFIX}:g{N}:tracking         hash: application name -> last applied position;
                                   "layout" -> the LAYOUT the generation was written in;
                                   "p{P}" -> partition P's checkpoint as last confirmed
                                   (its floor: the partition's own checkpoint never holds
                                   less unless the node holding it lost data);
                                   "w{S}" -> slice S applied up to here, "f{S}" -> the
                                   fencing token of its owner (workers only)
    {PREFIX}:g{N}:keys             hash: API key sha256 -> JSON [position, role, revoked 0|1]
    {PREFIX}:dead-letters          list of JSON poison-event reports
    {PREFIX}:skips                 hash: position -> JSON of an operator's decision to skip
    {PREFIX}:projector             hash: pid, host, position, head, at; a running projector
                                   renews it every second and it expires after 10 s
    {PREFIX}:projector:{host}:{pid}  the same, one per projector process (health checks)
    {PREFIX}:repair                hash: reason, target, detected_at, while Redis is being
                                   repaired after losing data (reads answer 503 meanwhile)
    {PREFIX:P}:g{N}:b:{K}          hash: the customers of bucket K (ids 16K to 16K+15),
                                   in partition P = K mod 256 (projections/customer_record)
    {PREFIX:P}:g{N}:cp             partition P's checkpoint: every event of its customers
                                   up to this position is applied
    {PREFIX:P}:g{N}:owner          the fencing token of the worker that owns partition P's
                                   slice (workers only): calls with a lower one are refused
    PREFIX:positions               pub/sub channel: "{N}:{position}" after each applied page

Meta keys share the hash tag {PREFIX}, so multi-key steps on them stay in one cluster
slot. A partition's buckets and its checkpoint share the tag {PREFIX:P}: one slot, one
node, so a node that loses the tail of its writes (an AOF cut short, a failover to a
replica that lagged) takes a partition's data and checkpoint back together, and the
projector finds the checkpoint below its floor and replays just what that partition lost.
Every atomic step on customer data touches one bucket and its partition's checkpoint.

LAYOUT names this layout and the record encoding. The projector records it in each
generation it writes and refuses to write a generation recorded in another; a reader
finding another answers 503 and says why. A change of either (a profile field added, say)
therefore takes a rebuild, and old and new versions never read each other's records.
"""

from __future__ import annotations

from contract.customer_document import PROFILE_FIELDS

# Customers per bucket hash, and partitions: fixed by LAYOUT (a change takes a rebuild).
BUCKET_SIZE = 16
PARTITIONS = 256

LAYOUT_FIELD = "layout"
LAYOUT = f"2:p{PARTITIONS}:b{BUCKET_SIZE}:" + ",".join(PROFILE_FIELDS)

DEFAULT_PREFIX = "customers"


def bucket_of(customer_id: int) -> int:
    return customer_id // BUCKET_SIZE


def partition_of(customer_id: int) -> int:
    """The partition a customer's record and checkpoint live in."""
    return (customer_id // BUCKET_SIZE) % PARTITIONS


# Workers own partitions in slices: partition P is in slice P mod SLICES.
SLICES = 16


def slice_of(partition: int) -> int:
    return partition % SLICES


def slice_partitions(slice_number: int) -> range:
    return range(slice_number, PARTITIONS, SLICES)


def slice_field(slice_number: int) -> str:
    """The tracking hash's field holding the position a slice is applied up to."""
    return f"w{slice_number}"


def token_field(slice_number: int) -> str:
    """The tracking hash's field holding the fencing token of a slice's owner."""
    return f"f{slice_number}"


def floor_field(partition: int) -> str:
    """The tracking hash's field holding a partition's confirmed checkpoint."""
    return f"p{partition}"


class Keys:
    """Key names for one deployment (prefix) of the read model."""

    def __init__(self, prefix: str = DEFAULT_PREFIX) -> None:
        self.prefix = prefix
        self._meta = f"{{{prefix}}}"

    @property
    def generation(self) -> str:
        return f"{self._meta}:generation"

    def tracking(self, generation: int) -> str:
        return f"{self._meta}:g{generation}:tracking"

    @property
    def dead_letters(self) -> str:
        return f"{self._meta}:dead-letters"

    @property
    def skips(self) -> str:
        return f"{self._meta}:skips"

    @property
    def projector(self) -> str:
        return f"{self._meta}:projector"

    def projector_beat(self, host: str, pid: int) -> str:
        return f"{self._meta}:projector:{host}:{pid}"

    @property
    def repair(self) -> str:
        return f"{self._meta}:repair"

    @property
    def positions_channel(self) -> str:
        return f"{self.prefix}:positions"

    def api_keys(self, generation: int) -> str:
        return f"{self._meta}:g{generation}:keys"

    def bucket(self, generation: int, customer_id: int) -> str:
        """The hash holding a customer's record (see projections/customer_record.py)."""
        bucket = customer_id // BUCKET_SIZE
        return f"{{{self.prefix}:{bucket % PARTITIONS}}}:g{generation}:b:{bucket}"

    def checkpoint(self, generation: int, partition: int) -> str:
        return f"{{{self.prefix}:{partition}}}:g{generation}:cp"

    def owner(self, generation: int, partition: int) -> str:
        """The fencing token of the worker owning the partition's slice (one slot with it)."""
        return f"{{{self.prefix}:{partition}}}:g{generation}:owner"

    def bucket_pattern(self, generation: int) -> str:
        """A SCAN pattern for a generation's buckets; filter with `bucket_number`."""
        return f"{{{self.prefix}:*}}:g{generation}:b:*"

    def bucket_number(self, name: bytes | str, generation: int) -> int | None:
        """The bucket K of one of this prefix's bucket keys in `generation`, else None
        (a SCAN by bucket_pattern may also match another prefix that starts like ours)."""
        text = name.decode() if isinstance(name, bytes) else name
        head, _, number = text.rpartition(f":g{generation}:b:")
        tag = head.removeprefix(f"{{{self.prefix}:").removesuffix("}")
        if len(tag) + len(self.prefix) + 3 != len(head) or not tag.isdigit():
            return None
        if not number.isdigit() or int(number) % PARTITIONS != int(tag):
            return None
        return int(number)

    def partition_of_key(self, name: str) -> int | None:
        """The partition a bucket or checkpoint key belongs to (from its hash tag)."""
        tag = name.partition("}")[0].removeprefix(f"{{{self.prefix}:")
        return int(tag) if tag.isdigit() else None

    def generation_patterns(self, generation: int) -> list[str]:
        """SCAN patterns covering a generation's keys: its partitions' (filter them with
        `bucket_number`/`partition_of_key`), and layout 1's, left when moving from it."""
        return [f"{{{self.prefix}:*}}:g{generation}:*", f"{self.prefix}:g{generation}:*"]

    def is_generation_key(self, name: bytes | str, generation: int) -> bool:
        text = name.decode() if isinstance(name, bytes) else name
        if text.startswith(f"{self.prefix}:g{generation}:"):
            return True  # layout 1's customers and keys
        if text == self.api_keys(generation):
            return True
        partition = self.partition_of_key(text)
        return partition is not None and text.startswith(
            f"{{{self.prefix}:{partition}}}:g{generation}:"
        )
