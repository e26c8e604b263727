"""Seed a Tryton 8.2 database with deterministic purchasing and production data.

Run as ``python tryton_seed.py CONFIG DATABASE --purchases N`` with the
interpreter of the environment where trytond, its modules and proteus are
installed. The database must already be initialised with the ``purchase`` and
``production_work`` modules. The script writes a seed manifest (JSON) beside
the SQLite file, named ``<DATABASE>.seed.json``, with the REST application
key of the admin user and the logins of the extra users.

Names, codes, quantities, prices and document dates are fixed, so two runs
produce the same records. Timestamps (``create_date``, ``write_date``), the
REST key and the password hashes differ between runs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

logger = logging.getLogger("interlink.demo.tryton_seed")

# Document dates are fixed so that every run produces the same records. The
# fiscal year covers the whole calendar year of these dates.
REFERENCE_DATE = dt.date(2026, 1, 5)
FISCAL_YEAR = (dt.date(2026, 1, 1), dt.date(2026, 12, 31))
CURRENCY_CODE = "EUR"
TAX_RATE = Decimal("0.19")

# A recurring pattern of target states, so that any purchase count gives a mix.
PURCHASE_STATE_CYCLE = (
    "draft",
    "quotation",
    "processing",
    "draft",
    "processing",
    "quotation",
    "processing",
    "confirmed",
    "cancelled",
    "done",
)


@dataclass(frozen=True)
class SupplierSpec:
    name: str
    street: str
    postal_code: str
    city: str
    country_code: str
    email: str
    phone: str


@dataclass(frozen=True)
class ProductSpec:
    code: str
    name: str
    type: str
    uom: str
    cost_price: Decimal
    list_price: Decimal


@dataclass(frozen=True)
class UserSpec:
    login: str
    name: str
    email: str
    password: str
    groups: tuple[str, ...]


@dataclass(frozen=True)
class SeededUser:
    id: int
    login: str
    password: str


@dataclass(frozen=True)
class SeedManifest:
    """Facts about a seeded database that tests and the demo need to connect."""

    database: str
    admin_login: str
    rest_application_key: str
    purchases: int
    reference_date: str
    users: list[SeededUser]


COUNTRIES = (
    ("DE", "DEU", "276", "Germany"),
    ("FR", "FRA", "250", "France"),
    ("NL", "NLD", "528", "Netherlands"),
    ("IT", "ITA", "380", "Italy"),
)

SUPPLIERS = (
    SupplierSpec(
        "Rheinmetall Bearings GmbH",
        "Industriestrasse 12",
        "40210",
        "Düsseldorf",
        "DE",
        "orders@rhein-bearings.example",
        "+49 211 555 0101",
    ),
    SupplierSpec(
        "Hydraulik Nord AG",
        "Hafenweg 7",
        "20457",
        "Hamburg",
        "DE",
        "sales@hydraulik-nord.example",
        "+49 40 555 0202",
    ),
    SupplierSpec(
        "Aciers de Lorraine SA",
        "12 rue des Forges",
        "57000",
        "Metz",
        "FR",
        "commandes@aciers-lorraine.example",
        "+33 3 87 55 03 03",
    ),
    SupplierSpec(
        "Van Dijk Fasteners BV",
        "Havenstraat 44",
        "3011 AB",
        "Rotterdam",
        "NL",
        "verkoop@vandijk-fasteners.example",
        "+31 10 555 0404",
    ),
    SupplierSpec(
        "Sicurezza Lavoro Srl",
        "Via Torino 88",
        "20123",
        "Milano",
        "IT",
        "ordini@sicurezza-lavoro.example",
        "+39 02 5550 0505",
    ),
    SupplierSpec(
        "Service Technik Mayer KG",
        "Am Werkstor 3",
        "70173",
        "Stuttgart",
        "DE",
        "service@technik-mayer.example",
        "+49 711 555 0606",
    ),
)

PRODUCTS = (
    ProductSpec("BRG-6204", "Ball bearing 6204-2RS", "goods", "Unit", Decimal("3.8500"), Decimal("6.9000")),
    ProductSpec(
        "HYD-HOSE-1M", "Hydraulic hose DN10, 1 m", "goods", "Unit", Decimal("14.2000"), Decimal("24.5000")
    ),
    ProductSpec(
        "STL-SHEET-2", "Steel sheet S235, 2 mm", "goods", "Kilogram", Decimal("1.1200"), Decimal("1.9500")
    ),
    ProductSpec(
        "BLT-M8X40", "Hex bolt M8x40, zinc plated", "goods", "Unit", Decimal("0.0900"), Decimal("0.2200")
    ),
    ProductSpec(
        "PPE-GLOVE-L", "Cut-resistant gloves, size L", "goods", "Unit", Decimal("4.6000"), Decimal("8.5000")
    ),
    ProductSpec(
        "LUB-ISO46-5L",
        "Hydraulic oil ISO VG 46, 5 l",
        "goods",
        "Unit",
        Decimal("21.9000"),
        Decimal("34.0000"),
    ),
    ProductSpec(
        "SRV-MAINT", "Preventive maintenance visit", "service", "Hour", Decimal("68.0000"), Decimal("95.0000")
    ),
    ProductSpec(
        "SRV-CALIB", "Torque tool calibration", "service", "Unit", Decimal("45.0000"), Decimal("60.0000")
    ),
)

# Components and the assembled product for the production and its works.
ASSEMBLY = ProductSpec(
    "ASM-PUMP-01", "Gear pump assembly GP-10", "goods", "Unit", Decimal("120.0000"), Decimal("210.0000")
)
ASSEMBLY_COMPONENTS = ("BRG-6204", "BLT-M8X40", "STL-SHEET-2")

USERS = (
    UserSpec(
        "buyer",
        "Anna Buyer",
        "anna.buyer@interlink-demo.example",
        "buyer-demo-password",
        ("Purchase", "Stock"),
    ),
    UserSpec(
        "planner",
        "Paul Planner",
        "paul.planner@interlink-demo.example",
        "planner-demo-password",
        ("Production", "Stock"),
    ),
    UserSpec(
        "auditor",
        "Alex Auditor",
        "alex.auditor@interlink-demo.example",
        "auditor-demo-password",
        ("Purchase",),
    ),
)


def parse_arguments(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("config", type=Path, help="trytond configuration file")
    parser.add_argument("database", help="database name (SQLite file stem)")
    parser.add_argument(
        "--purchases", type=int, default=30, help="number of purchases to create (at least 1)"
    )
    arguments = parser.parse_args(argv)
    if arguments.purchases < 1:
        parser.error(f"--purchases must be at least 1, got {arguments.purchases}")
    return arguments


def database_directory() -> Path:
    """Return the database directory of the trytond configuration that ``connect`` loaded."""
    import trytond.config as trytond_config

    return Path(trytond_config.get("database", "path"))


def connect(config_file: Path, database: str) -> Any:
    from proteus import config

    return config.set_trytond(database=database, config_file=str(config_file))


def seed_company() -> Any:
    from proteus import Model
    from trytond.modules.company.tests.tools import create_company, get_company

    Party = Model.get("party.party")
    party = Party(name="Interlink Demo Manufacturing GmbH")
    address = party.addresses[0] if party.addresses else party.addresses.new()
    address.street = "Werkstrasse 1"
    address.postal_code = "80331"
    address.city = "München"
    party.save()
    create_company(party=party, currency=CURRENCY_CODE)
    return get_company()


def seed_accounting(company: Any) -> dict[str, Any]:
    from proteus import Model
    from trytond.modules.account.tests.tools import create_chart, create_fiscalyear, create_tax, get_accounts
    from trytond.modules.account_invoice.tests.tools import (
        create_payment_term,
        set_fiscalyear_invoice_sequences,
    )

    create_chart(company)
    fiscal_year = set_fiscalyear_invoice_sequences(create_fiscalyear(company, today=FISCAL_YEAR))
    fiscal_year.click("create_period")
    accounts = get_accounts(company)

    tax = create_tax(TAX_RATE, company)
    tax.name = tax.description = "VAT 19%"
    tax.save()

    Category = Model.get("product.category")
    category = Category(name="Purchased goods and services")
    category.accounting = True
    category.account_expense = accounts["expense"]
    category.account_revenue = accounts["revenue"]
    category.supplier_taxes.append(tax)
    category.save()

    payment_term = create_payment_term()
    payment_term.save()

    Journal = Model.get("account.journal")
    PaymentMethod = Model.get("account.invoice.payment.method")
    (cash_journal,) = Journal.find([("type", "=", "cash")])
    payment_method = PaymentMethod(
        name="Bank transfer",
        journal=cash_journal,
        credit_account=accounts["cash"],
        debit_account=accounts["cash"],
    )
    payment_method.save()
    return {
        "category": category,
        "payment_term": payment_term,
        "payment_method": payment_method,
    }


def seed_countries() -> dict[str, Any]:
    from proteus import Model

    Country = Model.get("country.country")
    countries = {}
    for code, code3, numeric, name in COUNTRIES:
        country = Country(name=name, code=code, code3=code3, code_numeric=numeric)
        country.save()
        countries[code] = country
    return countries


def seed_suppliers(countries: dict[str, Any]) -> list[Any]:
    from proteus import Model

    Party = Model.get("party.party")
    suppliers = []
    for spec in SUPPLIERS:
        party = Party(name=spec.name)
        address = party.addresses[0] if party.addresses else party.addresses.new()
        address.street = spec.street
        address.postal_code = spec.postal_code
        address.city = spec.city
        address.country = countries[spec.country_code]
        party.contact_mechanisms.new(type="email", value=spec.email)
        party.contact_mechanisms.new(type="phone", value=spec.phone)
        party.save()
        suppliers.append(party)
    logger.info("seeded suppliers count=%d", len(suppliers))
    return suppliers


def create_product(spec: ProductSpec, category: Any, *, producible: bool = False) -> Any:
    from proteus import Model

    Uom = Model.get("product.uom")
    Template = Model.get("product.template")
    (uom,) = Uom.find([("name", "=", spec.uom)])
    template = Template(name=spec.name, code=spec.code, type=spec.type)
    template.default_uom = uom
    template.purchase_uom = uom
    template.purchasable = True
    template.producible = producible
    template.list_price = spec.list_price
    template.cost_price_method = "fixed"
    template.account_category = category
    (product,) = template.products
    product.cost_price = spec.cost_price
    template.save()
    (product,) = template.products
    return product


def seed_products(category: Any) -> dict[str, Any]:
    products = {spec.code: create_product(spec, category) for spec in PRODUCTS}
    products[ASSEMBLY.code] = create_product(ASSEMBLY, category, producible=True)
    logger.info("seeded products count=%d", len(products))
    return products


def seed_warehouse() -> Any:
    from proteus import Model

    Location = Model.get("stock.location")
    input_location = Location(name="WH2 Input", code="WH2-IN", type="storage")
    input_location.save()
    output_location = Location(name="WH2 Output", code="WH2-OUT", type="storage")
    output_location.save()
    storage_location = Location(name="WH2 Storage", code="WH2-STO", type="storage")
    storage_location.save()
    warehouse = Location(name="Secondary Warehouse", code="WH2", type="warehouse")
    warehouse.input_location = input_location
    warehouse.output_location = output_location
    warehouse.storage_location = storage_location
    # The production module makes this field required on every warehouse.
    (warehouse.production_location,) = Location.find([("code", "=", "PROD")])
    warehouse.save()
    rack = Location(name="WH2 Rack A", code="WH2-RA", type="storage")
    rack.parent = storage_location
    rack.save()
    return warehouse


def seed_stock(products: dict[str, Any]) -> None:
    from proteus import Model

    Inventory = Model.get("stock.inventory")
    Location = Model.get("stock.location")
    (storage,) = Location.find([("code", "=", "STO")])
    inventory = Inventory(location=storage, date=REFERENCE_DATE)
    for code in ASSEMBLY_COMPONENTS:
        line = inventory.lines.new(product=products[code])
        line.quantity = 500.0
        line.expected_quantity = 0.0
    inventory.click("confirm")


def line_specs(index: int, state: str) -> list[tuple[str, float, Decimal]]:
    """Return (product code, quantity, unit price) for the lines of one purchase.

    Purchases that end ``done`` buy services only, so that no shipment has to
    be received before Tryton marks them done.
    """
    codes = [spec.code for spec in PRODUCTS if spec.type == "goods"]
    if state == "done":
        codes = [spec.code for spec in PRODUCTS if spec.type == "service"]
    count = 1 + (index * 7) % 4
    lines = []
    for position in range(count):
        code = codes[(index * 3 + position * 5) % len(codes)]
        quantity = float(1 + (index * 11 + position * 7) % 40)
        if code == "STL-SHEET-2":
            quantity += 0.5
        base = next(spec.cost_price for spec in PRODUCTS if spec.code == code)
        unit_price = (base * Decimal(100 + (index + position) % 9) / 100).quantize(Decimal("0.0001"))
        lines.append((code, quantity, unit_price))
    return lines


def create_purchase(
    index: int,
    state: str,
    suppliers: list[Any],
    products: dict[str, Any],
    warehouses: list[Any],
    accounting: dict[str, Any],
) -> Any:
    from proteus import Model

    Purchase = Model.get("purchase.purchase")
    purchase_date = REFERENCE_DATE + dt.timedelta(days=(index * 5) % 330)
    purchase = Purchase()
    purchase.party = suppliers[index % len(suppliers)]
    purchase.payment_term = accounting["payment_term"]
    purchase.invoice_method = "order"
    purchase.purchase_date = purchase_date
    purchase.delivery_date = purchase_date + dt.timedelta(days=14 + index % 3 * 7)
    purchase.warehouse = warehouses[1] if index % 4 == 3 else warehouses[0]
    purchase.reference = f"SUP-2026-{index + 1:04d}"
    purchase.description = f"Demo purchase {index + 1:03d}"
    for code, quantity, unit_price in line_specs(index, state):
        line = purchase.lines.new()
        line.product = products[code]
        line.quantity = quantity
        line.unit_price = unit_price
    if index % 6 == 5:
        comment = purchase.lines.new(type="comment")
        comment.description = "Deliver to gate 3, weekdays 7:00-15:00."
    purchase.save()
    return purchase


def advance_purchase(purchase: Any, state: str, accounting: dict[str, Any]) -> None:
    if state == "draft":
        return
    if state == "cancelled":
        purchase.click("cancel")
        return
    purchase.click("quote")
    if state == "quotation":
        return
    if state == "confirmed":
        confirm_without_processing(purchase)
        return
    purchase.click("confirm")
    if state == "done":
        pay_invoices(purchase, accounting)


def confirm_without_processing(purchase: Any) -> None:
    """Confirm a purchase and leave its processing task in the queue.

    With ``[queue] worker`` enabled, trytond stores the processing task in
    ``ir.queue`` for a worker instead of running it at commit. No worker runs
    for the seeded databases, so the purchase stays ``confirmed``.
    """
    import trytond.config as trytond_config

    trytond_config.set("queue", "worker", "True")
    try:
        purchase.click("confirm")
    finally:
        trytond_config.set("queue", "worker", "False")


def pay_invoices(purchase: Any, accounting: dict[str, Any]) -> None:
    purchase.reload()
    for invoice in purchase.invoices:
        invoice.invoice_date = purchase.purchase_date
        invoice.reference = purchase.reference
        invoice.click("post")
        pay = invoice.click("pay")
        pay.form.payment_method = accounting["payment_method"]
        pay.form.date = purchase.purchase_date
        pay.execute("choice")
    purchase.reload()


def seed_purchases(
    count: int,
    suppliers: list[Any],
    products: dict[str, Any],
    warehouses: list[Any],
    accounting: dict[str, Any],
) -> None:
    states: dict[str, int] = {}
    for index in range(count):
        state = PURCHASE_STATE_CYCLE[index % len(PURCHASE_STATE_CYCLE)]
        purchase = create_purchase(index, state, suppliers, products, warehouses, accounting)
        advance_purchase(purchase, state, accounting)
        purchase.reload()
        if purchase.state != state:
            raise RuntimeError(
                f"purchase {purchase.id} ended in state {purchase.state!r}, expected {state!r}"
            )
        states[state] = states.get(state, 0) + 1
    logger.info("seeded purchases count=%d states=%s", count, states)


def seed_production(products: dict[str, Any], warehouse: Any) -> None:
    from proteus import Model

    Category = Model.get("production.work.center.category")
    WorkCenter = Model.get("production.work.center")
    machining = Category(name="Machining")
    machining.save()
    assembly = Category(name="Assembly")
    assembly.save()
    plant = WorkCenter(name="Plant Munich", warehouse=warehouse)
    plant.save()
    # One center per category keeps the picker, which chooses at random among
    # matching centers, deterministic.
    lathe = WorkCenter(
        name="CNC lathe L-200",
        parent=plant,
        category=machining,
        warehouse=warehouse,
        cost_price=Decimal("42.0000"),
        cost_method="hour",
    )
    lathe.save()
    bench = WorkCenter(
        name="Assembly bench B-1",
        parent=plant,
        category=assembly,
        warehouse=warehouse,
        cost_price=Decimal("18.5000"),
        cost_method="cycle",
    )
    bench.save()

    routing = create_routing(products, machining, assembly)
    create_productions(products, routing, plant, warehouse)


def create_routing(products: dict[str, Any], machining: Any, assembly: Any) -> Any:
    from proteus import Model

    BOM = Model.get("production.bom")
    Operation = Model.get("production.routing.operation")
    Routing = Model.get("production.routing")
    ProductBom = Model.get("product.product-production.bom")

    bom = BOM(name="Gear pump GP-10")
    for code, quantity in zip(ASSEMBLY_COMPONENTS, (2, 8, 1.5), strict=True):
        bom.inputs.new(product=products[code], quantity=quantity)
    bom.outputs.new(product=products[ASSEMBLY.code], quantity=1)
    bom.save()

    turning = Operation(name="Turn housing", work_center_category=machining)
    turning.save()
    fitting = Operation(name="Fit bearings and close", work_center_category=assembly)
    fitting.save()
    routing = Routing(name="Gear pump GP-10")
    routing.boms.append(bom)
    routing.steps.new(operation=turning)
    routing.steps.new(operation=fitting)
    routing.save()

    product = products[ASSEMBLY.code]
    product.boms.append(ProductBom(bom=bom, routing=routing))
    product.save()
    return routing


def create_productions(products: dict[str, Any], routing: Any, plant: Any, warehouse: Any) -> None:
    from proteus import Model

    Production = Model.get("production")
    product = products[ASSEMBLY.code]
    (bom,) = routing.boms
    targets = ("waiting", "running", "running")
    for index, target in enumerate(targets):
        production = Production(warehouse=warehouse)
        production.product = product
        production.bom = bom
        production.routing = routing
        production.work_center = plant
        production.planned_date = REFERENCE_DATE + dt.timedelta(days=10 * index)
        production.quantity = float(5 + 5 * index)
        production.click("wait")
        if target == "running":
            production.click("assign_try")
            production.click("run")
        if index == 2:
            run_first_work(production)
    logger.info("seeded productions count=%d", len(targets))


def run_first_work(production: Any) -> None:
    work = production.works[0]
    cycle = work.cycles.new()
    cycle.click("run")
    cycle.duration = dt.timedelta(hours=1, minutes=30)
    cycle.click("do")


def seed_users(company: Any) -> list[SeededUser]:
    from proteus import Model

    User = Model.get("res.user")
    Group = Model.get("res.group")
    Party = Model.get("party.party")
    Employee = Model.get("company.employee")
    Company = Model.get("company.company")
    seeded = []
    for spec in USERS:
        party = Party(name=spec.name)
        party.save()
        employee = Employee(party=party, company=company)
        employee.save()
        user = User(login=spec.login, name=spec.name, email=spec.email)
        user.password = spec.password
        for group_name in spec.groups:
            (group,) = Group.find([("name", "=", group_name)])
            user.groups.append(group)
        user.companies.append(Company(company.id))
        user.company = Company(company.id)
        user.employees.append(employee)
        user.employee = employee
        user.save()
        seeded.append(SeededUser(id=user.id, login=spec.login, password=spec.password))
    logger.info("seeded users count=%d", len(seeded))
    return seeded


def set_admin_employee(company: Any) -> None:
    from proteus import Model
    from proteus.config import get_config

    User = Model.get("res.user")
    Party = Model.get("party.party")
    Employee = Model.get("company.employee")
    party = Party(name="Demo Administrator")
    party.save()
    employee = Employee(party=party, company=company)
    employee.save()
    admin = User(get_config().user)
    admin.employees.append(employee)
    admin.employee = employee
    admin.save()


def create_rest_key() -> str:
    """Create a validated REST application key for the admin user."""
    from proteus import Model
    from proteus.config import get_config

    Application = Model.get("res.user.application")
    application = Application(user=get_config().user, application="rest")
    application.save()
    application.reload()
    if application.state != "validated":
        raise RuntimeError(f"REST application key is in state {application.state!r}, expected 'validated'")
    return str(application.key)


def read_manifest(path: Path) -> SeedManifest:
    data = json.loads(path.read_text())
    users = [SeededUser(**user) for user in data.pop("users")]
    return SeedManifest(users=users, **data)


def write_manifest(path: Path, manifest: SeedManifest) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(asdict(manifest), indent=2) + "\n")
    temporary.replace(path)


def seed(config_file: Path, database: str, purchases: int) -> SeedManifest:
    connect(config_file, database)
    company = seed_company()
    logger.info("seeded company id=%d currency=%s", company.id, CURRENCY_CODE)
    accounting = seed_accounting(company)
    set_admin_employee(company)
    countries = seed_countries()
    suppliers = seed_suppliers(countries)
    products = seed_products(accounting["category"])

    from proteus import Model

    Location = Model.get("stock.location")
    (main_warehouse,) = Location.find([("code", "=", "WH")])
    warehouses = [main_warehouse, seed_warehouse()]
    seed_stock(products)
    seed_purchases(purchases, suppliers, products, warehouses, accounting)
    seed_production(products, main_warehouse)
    users = seed_users(company)
    return SeedManifest(
        database=database,
        admin_login="admin",
        rest_application_key=create_rest_key(),
        purchases=purchases,
        reference_date=REFERENCE_DATE.isoformat(),
        users=users,
    )


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s %(message)s"
    )
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    manifest = seed(arguments.config, arguments.database, arguments.purchases)
    manifest_path = database_directory() / f"{arguments.database}.seed.json"
    write_manifest(manifest_path, manifest)
    logger.info("wrote seed manifest path=%s", manifest_path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
